package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Keys lists every scalar setting by its dotted YAML key (dhcp.unknown,
// http.listen, …): what Set, --set and IMGCTL_* variables accept.
func Keys() []string {
	var keys []string
	walk(reflect.ValueOf(&Config{}).Elem(), "", func(key string, _ reflect.Value) { keys = append(keys, key) })
	return keys
}

// envKey maps IMGCTL_DHCP_SERVER_IP to dhcp.server_ip, if that is a key.
func envKey(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "IMGCTL_")
	if !ok {
		return "", false
	}
	for _, k := range Keys() {
		if strings.ToUpper(strings.NewReplacer(".", "_").Replace(k)) == rest {
			return k, true
		}
	}
	return "", false
}

// Set sets the scalar at key (dotted YAML path) from its string form:
// strings, booleans, integers, durations ("30s") and comma-separated lists.
func Set(cfg *Config, key, value string) error {
	var found bool
	var err error
	walk(reflect.ValueOf(cfg).Elem(), "", func(k string, v reflect.Value) {
		if k != key {
			return
		}
		found = true
		err = setValue(v, value)
	})
	if !found {
		return fmt.Errorf("unknown setting %q", key)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func setValue(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts).Convert(v.Type()))
	default:
		return fmt.Errorf("cannot be set from a string (use the config file)")
	}
	return nil
}

// walk calls fn for every settable scalar field under v with its dotted key.
// Inline structs share their parent's prefix; slices of structs are skipped.
func walk(v reflect.Value, prefix string, fn func(key string, v reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(opts, "inline") {
			walk(fv, prefix, fn)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			walk(fv, key, fn)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() != reflect.String:
		default:
			fn(key, fv)
		}
	}
}
