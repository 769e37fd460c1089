package cloudinit

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Payload is the body the OpenCHAMI cloud-init tutorial posts:
// {"name": ..., "cloud-init": {"userdata": {...}, "metadata": {...},
// "vendordata": {...}}}. Each part may be a mapping (rendered as
// #cloud-config) or a string (taken as written). merge, disabled and
// network-config are imgctl's additions.
type Payload struct {
	Name      string       `yaml:"name" json:"name"`
	CloudInit PayloadParts `yaml:"cloud-init" json:"cloud-init"`
}

// PayloadParts are a Payload's files.
type PayloadParts struct {
	UserData      any       `yaml:"userdata" json:"userdata"`
	MetaData      any       `yaml:"metadata" json:"metadata"`
	VendorData    any       `yaml:"vendordata" json:"vendordata"`
	NetworkConfig any       `yaml:"network-config" json:"network-config"`
	Merge         MergeMode `yaml:"merge" json:"merge"`
	Disabled      bool      `yaml:"disabled" json:"disabled"`
}

// Parse reads a record from what a user hands imgctl (a file for
// `imgctl cloud-init set`, a body for the admin API), in any of three forms:
//   - a bare user-data body (its first line #cloud-config, ## template:
//     jinja, #!, #include …);
//   - the OpenCHAMI payload ({name, cloud-init: {userdata, metadata,
//     vendordata}}; JSON is YAML, so both do);
//   - imgctl's own form ({user-data, meta-data, vendor-data,
//     network-config, merge, disabled}), each part a string or a mapping.
//
// It returns the payload's name ("" when the form has none) and the record,
// validated.
func Parse(source string, b []byte) (string, Data, error) {
	text := string(b)
	if first, _, _ := strings.Cut(strings.TrimLeft(text, "\n"), "\n"); strings.HasPrefix(strings.TrimSpace(first), "#cloud-config") || opaque(text) {
		d := Data{UserData: text}
		return "", d, wrap(source, d.Validate())
	}
	var probe map[string]any
	if err := yaml.Unmarshal(b, &probe); err != nil {
		return "", Data{}, fmt.Errorf("%s: %s", source, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if _, ok := probe["cloud-init"]; ok {
		var p Payload
		if err := strict(b, &p); err != nil {
			return "", Data{}, fmt.Errorf("%s: %w", source, err)
		}
		d, err := fromParts(p.CloudInit.UserData, p.CloudInit.MetaData, p.CloudInit.VendorData, p.CloudInit.NetworkConfig)
		if err != nil {
			return "", Data{}, fmt.Errorf("%s: %w", source, err)
		}
		d.Merge, d.Disabled = p.CloudInit.Merge, p.CloudInit.Disabled
		return p.Name, d, wrap(source, d.Validate())
	}
	var own struct {
		UserData      any       `yaml:"user-data"`
		MetaData      any       `yaml:"meta-data"`
		VendorData    any       `yaml:"vendor-data"`
		NetworkConfig any       `yaml:"network-config"`
		Merge         MergeMode `yaml:"merge"`
		Disabled      bool      `yaml:"disabled"`
	}
	if err := strict(b, &own); err != nil {
		return "", Data{}, fmt.Errorf("%s: %w (want a #cloud-config body, {name, cloud-init: {userdata, metadata, vendordata}} or {user-data, meta-data, vendor-data, network-config, merge})", source, err)
	}
	d, err := fromParts(own.UserData, own.MetaData, own.VendorData, own.NetworkConfig)
	if err != nil {
		return "", Data{}, fmt.Errorf("%s: %w", source, err)
	}
	d.Merge, d.Disabled = own.Merge, own.Disabled
	return "", d, wrap(source, d.Validate())
}

func wrap(source string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	return nil
}

func strict(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// fromParts turns each part (nil, a string, or a mapping) into its text.
func fromParts(user, meta, vendor, network any) (Data, error) {
	var d Data
	var err error
	if d.UserData, err = partText(UserData, user, true); err != nil {
		return d, err
	}
	if d.MetaData, err = partText(MetaData, meta, false); err != nil {
		return d, err
	}
	if d.VendorData, err = partText(VendorData, vendor, true); err != nil {
		return d, err
	}
	d.NetworkConfig, err = partText(NetworkConfig, network, false)
	return d, err
}

func partText(file string, v any, cloudConfig bool) (string, error) {
	switch p := v.(type) {
	case nil:
		return "", nil
	case string:
		return p, nil
	case map[string]any:
		if len(p) == 0 {
			return "", nil
		}
		b, err := marshal(p)
		if err != nil {
			return "", err
		}
		if cloudConfig {
			return headerCloudConfig + "\n" + string(b), nil
		}
		return string(b), nil
	}
	return "", fmt.Errorf("%s: want a mapping or a string, got %T", file, v)
}
