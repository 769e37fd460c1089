// Package hostlist expands and compresses Slurm-style host lists such as
// "nid[001-004,010],login1" or "10.0.0.[1-9]". Ranges keep their zero padding.
package hostlist

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// MaxHosts bounds one expansion so that a typo like "n[0-99999999]" is an error
// rather than an out-of-memory.
const MaxHosts = 1 << 20

// Expand returns the names a host list denotes, in order, without duplicates
// removed (callers that need a set dedupe themselves). Brackets may appear more
// than once in one name ("r[1-2]n[1-3]") and expand as a cross product.
func Expand(list string) ([]string, error) {
	parts, err := splitTop(list)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range parts {
		names, err := expandOne(p)
		if err != nil {
			return nil, fmt.Errorf("hostlist %q: %w", list, err)
		}
		out = append(out, names...)
		if len(out) > MaxHosts {
			return nil, fmt.Errorf("hostlist %q: more than %d hosts", list, MaxHosts)
		}
	}
	return out, nil
}

// splitTop splits on commas outside brackets.
func splitTop(list string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i, c := range list {
		switch c {
		case '[':
			depth++
			if depth > 1 {
				return nil, fmt.Errorf("hostlist %q: nested '[' at offset %d", list, i)
			}
		case ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("hostlist %q: unmatched ']' at offset %d", list, i)
			}
		case ',':
			if depth == 0 {
				parts = append(parts, list[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("hostlist %q: unclosed '['", list)
	}
	parts = append(parts, list[start:])
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("hostlist %q: empty", list)
	}
	return out, nil
}

func expandOne(pattern string) ([]string, error) {
	open := strings.IndexByte(pattern, '[')
	if open < 0 {
		if strings.ContainsAny(pattern, "] \t") {
			return nil, fmt.Errorf("bad name %q", pattern)
		}
		return []string{pattern}, nil
	}
	end := strings.IndexByte(pattern[open:], ']')
	if end < 0 {
		return nil, fmt.Errorf("unclosed '[' in %q", pattern)
	}
	end += open
	prefix, body, rest := pattern[:open], pattern[open+1:end], pattern[end+1:]
	values, err := expandRanges(body)
	if err != nil {
		return nil, err
	}
	tails, err := expandOne(rest)
	if rest == "" {
		tails, err = []string{""}, nil
	}
	if err != nil {
		return nil, err
	}
	if len(values)*len(tails) > MaxHosts {
		return nil, fmt.Errorf("more than %d hosts", MaxHosts)
	}
	out := make([]string, 0, len(values)*len(tails))
	for _, v := range values {
		for _, t := range tails {
			out = append(out, prefix+v+t)
		}
	}
	return out, nil
}

// expandRanges expands "001-004,010" into its members, keeping zero padding.
func expandRanges(body string) ([]string, error) {
	if body == "" {
		return nil, fmt.Errorf("empty brackets")
	}
	var out []string
	for _, r := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isRange {
			if _, err := strconv.ParseUint(lo, 10, 64); err != nil {
				return nil, fmt.Errorf("bad number %q", lo)
			}
			out = append(out, lo)
			continue
		}
		a, err1 := strconv.ParseUint(lo, 10, 64)
		b, err2 := strconv.ParseUint(hi, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad range %q", r)
		}
		if b < a {
			return nil, fmt.Errorf("range %q runs backwards", r)
		}
		if b-a >= MaxHosts {
			return nil, fmt.Errorf("range %q has more than %d members", r, MaxHosts)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		for n := a; n <= b; n++ {
			out = append(out, fmt.Sprintf("%0*d", width, n))
		}
	}
	return out, nil
}

// Compress returns a compact host list for names: runs of names that differ only
// in a trailing number of the same width become ranges ("nid[001-003,007]").
// Names are sorted by prefix, then number.
func Compress(names []string) string {
	type key struct {
		prefix string
		width  int
	}
	groups := map[key][]uint64{}
	var plain []string
	var order []key
	for _, n := range names {
		i := len(n)
		for i > 0 && n[i-1] >= '0' && n[i-1] <= '9' {
			i--
		}
		digits := n[i:]
		v, err := strconv.ParseUint(digits, 10, 64)
		if digits == "" || err != nil {
			plain = append(plain, n)
			continue
		}
		width := 0
		if len(digits) > 1 && digits[0] == '0' {
			width = len(digits)
		}
		k := key{n[:i], width}
		if width == 0 {
			k.width = -1 // unpadded numbers of any length share one range list
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], v)
	}
	sort.Slice(order, func(a, b int) bool {
		if order[a].prefix != order[b].prefix {
			return order[a].prefix < order[b].prefix
		}
		return order[a].width < order[b].width
	})
	var parts []string
	for _, k := range order {
		vs := groups[k]
		sort.Slice(vs, func(a, b int) bool { return vs[a] < vs[b] })
		vs = dedupe(vs)
		w := k.width
		if w < 0 {
			w = 0
		}
		if len(vs) == 1 {
			parts = append(parts, fmt.Sprintf("%s%0*d", k.prefix, w, vs[0]))
			continue
		}
		var ranges []string
		for i := 0; i < len(vs); {
			j := i
			for j+1 < len(vs) && vs[j+1] == vs[j]+1 {
				j++
			}
			if i == j {
				ranges = append(ranges, fmt.Sprintf("%0*d", w, vs[i]))
			} else {
				ranges = append(ranges, fmt.Sprintf("%0*d-%0*d", w, vs[i], w, vs[j]))
			}
			i = j + 1
		}
		parts = append(parts, k.prefix+"["+strings.Join(ranges, ",")+"]")
	}
	sort.Strings(plain)
	return strings.Join(append(parts, plain...), ",")
}

func dedupe(vs []uint64) []uint64 {
	out := vs[:0]
	for i, v := range vs {
		if i == 0 || v != vs[i-1] {
			out = append(out, v)
		}
	}
	return out
}
