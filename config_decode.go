package hooks

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// hookDecoder holds what parseHook learns of one hook while it decodes the
// hook's keys: the errors so far and the lines to report later ones at.
type hookDecoder struct {
	num         int // the hook's number in the list
	errs        []*ConfigError
	seen        map[string]int  // key → line of its first occurrence
	valueLine   map[string]int  // key → line of its value
	patternLine map[string]int  // filesystems pattern → line of its key
	reported    map[string]bool // keys whose value was rejected
}

// fail records an error of field at line.
func (d *hookDecoder) fail(field string, line int, format string, args ...any) {
	d.errs = append(d.errs, &ConfigError{Hook: d.num, Field: field, Line: line, Err: fmt.Errorf(format, args...)})
	d.reported[field] = true
}

// parseHook decodes hook number num from item and checks it.
func parseHook(num int, item *yaml.Node) (HookConfig, []*ConfigError) {
	d := &hookDecoder{
		num:         num,
		seen:        map[string]int{},
		valueLine:   map[string]int{},
		patternLine: map[string]int{},
		reported:    map[string]bool{},
	}
	var c HookConfig
	if item.Kind != yaml.MappingNode {
		d.fail("", item.Line, "a hook must be a mapping of its settings (%s), not %s", hookKeyNames(), describe(item))
		return c, d.errs
	}
	for i := 0; i+1 < len(item.Content); i += 2 {
		d.decodeKey(item.Content[i], item.Content[i+1], &c)
	}
	for _, p := range c.problems() {
		if p.pattern == "" && d.reported[p.field] {
			continue // the value was rejected above; do not complain twice
		}
		line := item.Line // a missing field: the start of the hook
		if p.pattern != "" {
			line = d.patternLine[p.pattern]
		} else if l, ok := d.valueLine[p.field]; ok {
			line = l
		}
		d.errs = append(d.errs, &ConfigError{Hook: num, Field: p.field, Line: line, Err: p.err})
	}
	sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
	return c, d.errs
}

// decodeKey decodes the key k with value v of a hook into c.
func (d *hookDecoder) decodeKey(k, v *yaml.Node, c *HookConfig) {
	if k.Kind != yaml.ScalarNode {
		d.fail("", k.Line, "a key must be a string, not %s", describe(k))
		return
	}
	key := k.Value
	if first, dup := d.seen[key]; dup {
		d.fail(key, k.Line, "duplicate key (first on line %d)", first)
		return
	}
	d.seen[key] = k.Line
	d.valueLine[key] = v.Line
	if hk, ok := lookupHookKey(key); ok {
		hk.decode(d, key, v, c)
		return
	}
	if key == "<<" {
		d.fail(key, k.Line, "YAML merge keys are not supported")
		return
	}
	d.fail(key, k.Line, "unknown key (want one of %s)", hookKeyNames())
}

// stringValue decodes a string that must not be empty into the field of
// HookConfig that field returns.
func stringValue(field func(*HookConfig) *string) func(*hookDecoder, string, *yaml.Node, *HookConfig) {
	return func(d *hookDecoder, key string, v *yaml.Node, c *HookConfig) {
		if s, ok := d.str(key, "", v); ok {
			*field(c) = s
		}
	}
}

// str decodes v, the value of key, or an item of it that what names, as a
// string that must not be empty.
func (d *hookDecoder) str(key, what string, v *yaml.Node) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		d.fail(key, v.Line, "%smust be a string, not %s", what, describe(v))
		return "", false
	}
	if v.Value == "" {
		d.fail(key, v.Line, "%smust not be empty", what)
	}
	return v.Value, true
}

// boolValue decodes a boolean into the field of HookConfig that field
// returns.
func boolValue(field func(*HookConfig) *bool) func(*hookDecoder, string, *yaml.Node, *HookConfig) {
	return func(d *hookDecoder, key string, v *yaml.Node, c *HookConfig) {
		if b, ok := d.boolean(key, "", v); ok {
			*field(c) = b
		}
	}
}

// boolean decodes v, the value of key or of a pattern if what names it, as
// a boolean. A null is no boolean: a forgotten value must not turn something
// off.
func (d *hookDecoder) boolean(key, what string, v *yaml.Node) (bool, bool) {
	var b bool
	if v.Kind != yaml.ScalarNode || isNull(v) || v.Decode(&b) != nil {
		d.fail(key, v.Line, "%smust be true or false, not %s", what, describeValue(v))
		return false, false
	}
	return b, true
}

// durationValue decodes a Go duration ("30s") into the field of HookConfig
// that field returns.
func durationValue(field func(*HookConfig) *time.Duration) func(*hookDecoder, string, *yaml.Node, *HookConfig) {
	return func(d *hookDecoder, key string, v *yaml.Node, c *HookConfig) {
		if v.Kind != yaml.ScalarNode || isNull(v) {
			d.fail(key, v.Line, `must be a duration such as "30s", not %s`, describe(v))
			return
		}
		dur, err := time.ParseDuration(v.Value)
		if err != nil {
			d.fail(key, v.Line, `%s is not a duration (write it like "30s" or "1m30s")`, strconv.Quote(v.Value))
			return
		}
		*field(c) = dur
	}
}

// stringsValue decodes a list of strings, none of them empty, into the field
// of HookConfig that field returns.
func stringsValue(field func(*HookConfig) *[]string) func(*hookDecoder, string, *yaml.Node, *HookConfig) {
	return func(d *hookDecoder, key string, v *yaml.Node, c *HookConfig) {
		if v.Kind != yaml.SequenceNode {
			d.fail(key, v.Line, "must be a list of strings, not %s", describe(v))
			return
		}
		list := make([]string, 0, len(v.Content))
		for i, item := range v.Content {
			if s, ok := d.str(key, fmt.Sprintf("item %d: ", i+1), item); ok {
				list = append(list, s)
			}
		}
		*field(c) = list
	}
}

// enumValue decodes one of values into the field of HookConfig that field
// returns.
func enumValue(field func(*HookConfig) *string, values ...string) func(*hookDecoder, string, *yaml.Node, *HookConfig) {
	want := strings.Join(values, ", ")
	if n := len(values); n > 1 {
		want = strings.Join(values[:n-1], ", ") + " or " + values[n-1]
	}
	return func(d *hookDecoder, key string, v *yaml.Node, c *HookConfig) {
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" || !slices.Contains(values, v.Value) {
			d.fail(key, v.Line, "must be %s, not %s", want, describeValue(v))
			return
		}
		*field(c) = v.Value
	}
}

// decodeFilesystems decodes the mapping of dataset patterns to booleans of
// the key filesystems.
func decodeFilesystems(d *hookDecoder, key string, v *yaml.Node, c *HookConfig) {
	if v.Kind != yaml.MappingNode {
		d.fail(key, v.Line, "must be a mapping of dataset patterns to true or false, not %s", describe(v))
		return
	}
	c.Filesystems = make(map[string]bool, len(v.Content)/2)
	for j := 0; j+1 < len(v.Content); j += 2 {
		pk, pv := v.Content[j], v.Content[j+1]
		if pk.Kind != yaml.ScalarNode || isNull(pk) {
			d.fail(key, pk.Line, "a pattern must be a string, not %s", describe(pk))
			continue
		}
		pattern := pk.Value
		if first, dup := d.patternLine[pattern]; dup {
			d.fail(key, pk.Line, "duplicate pattern %q (first on line %d)", pattern, first)
			continue
		}
		d.patternLine[pattern] = pk.Line
		if pass, ok := d.boolean(key, fmt.Sprintf("pattern %q: ", pattern), pv); ok {
			c.Filesystems[pattern] = pass
		}
	}
}

// decodeSkipExitCode decodes the exit status of the key skip_exit_code.
func decodeSkipExitCode(d *hookDecoder, key string, v *yaml.Node, c *HookConfig) {
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || v.Decode(&c.SkipExitCode) != nil {
		d.fail(key, v.Line, "must be an exit status from 1 to 255, not %s", describeValue(v))
		return
	}
	if c.SkipExitCode == 0 {
		d.fail(key, v.Line, "0 is not an exit status from 1 to 255 (leave the key out for none)")
	}
}
