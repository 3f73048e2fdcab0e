package hooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxHookListSize is the largest hook list, in bytes, that ParseHookList and
// ReadHookList accept: 1 MiB. A real hook list is a few KiB (a hook is a few
// lines), so the bound leaves room for thousands of hooks, while a wrong
// file (-c /dev/zero, a log, an image) fails at once with a clear error
// rather than after the parser has taken many times its size in memory.
const MaxHookListSize = 1 << 20

// errHookListTooLarge is the error of a hook list over MaxHookListSize.
var errHookListTooLarge = fmt.Errorf("hook list is larger than %d MiB, the most a hook list may be", MaxHookListSize>>20)

// ReadHookList reads a hook list from r and parses it with ParseHookList. It
// reads at most MaxHookListSize+1 bytes: a longer input, even an endless
// one, fails as soon as the bound is passed, with the error of ParseHookList
// for a hook list over MaxHookListSize. An error of r is returned wrapped.
func ReadHookList(r io.Reader) (HookList, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxHookListSize+1))
	if err != nil {
		return nil, fmt.Errorf("read hook list: %w", err)
	}
	return ParseHookList(data)
}

// ParseHookList parses a hook list written in YAML (or JSON, which is YAML):
// either a list of hooks, or a mapping whose only key "hooks" holds that list
// (as in a zrepl job). An empty document, or an empty or null list, gives an
// empty list.
//
//	hooks:
//	  - type: command
//	    path: /etc/snaphook/pre-post.sh
//	    timeout: 10s
//	    err_is_fatal: true
//	    filesystems: {"tank/db<": true}
//	  - type: postgres-checkpoint
//	    dsn: "host=/run/postgresql dbname=postgres user=backup"
//	    filesystems: {"tank/pg<": true}
//
// It is strict: unknown keys, duplicate keys, values of the wrong kind, a key
// with no value (null), a missing type, an unknown type, and everything that
// Validate rejects are errors. Booleans may also be written yes/no/on/off,
// as YAML 1.1 (and zrepl) allowed. YAML aliases (*name) and merge keys are
// refused, so the work is bounded by the size of data. It does not apply
// defaults: a missing timeout stays 0 and missing filesystems stay nil;
// HookFromConfig and ListFromConfig apply them.
//
// On error it returns a nil list and every problem found, in document order,
// joined with errors.Join: each a *ConfigError naming the hook number, the
// field and the line, like
//
//	hook #2 (line 7): path: "bin/x" is not absolute
//
// A YAML syntax error ends parsing, and so do aliases; each comes back as a
// *ConfigError with its line. Errors never contain a DSN or a part of one.
//
// Data longer than MaxHookListSize is not parsed: the error is a
// *ConfigError about the document as a whole, "line 1: hook list is larger
// than 1 MiB, the most a hook list may be".
func ParseHookList(data []byte) (HookList, error) {
	if len(data) > MaxHookListSize {
		return nil, errors.Join(&ConfigError{Line: 1, Err: errHookListTooLarge})
	}
	root, cerr := parseDocument(data)
	if cerr != nil {
		return nil, errors.Join(cerr)
	}
	if alias := findAlias(root); alias != nil {
		return nil, errors.Join(&ConfigError{Line: alias.Line, Err: fmt.Errorf(
			"YAML alias *%s: aliases are not supported in a hook list (write the value out)", alias.Value)})
	}
	seq, errs := hookSequence(root)
	list := HookList{}
	if seq != nil {
		for i, item := range seq.Content {
			c, herrs := parseHook(i+1, item)
			errs = append(errs, herrs...)
			list = append(list, c)
		}
	}
	if len(errs) > 0 {
		joined := make([]error, len(errs))
		for i, e := range errs {
			joined[i] = e
		}
		return nil, errors.Join(joined...)
	}
	return list, nil
}

// parseDocument returns the root node of the only YAML document in data, or
// nil for an empty document.
func parseDocument(data []byte) (*yaml.Node, *ConfigError) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root *yaml.Node
	for n := 0; ; n++ {
		var doc yaml.Node
		err := decodeNode(dec, &doc)
		if errors.Is(err, io.EOF) {
			return root, nil
		}
		if err != nil {
			return nil, yamlError(data, err)
		}
		var node *yaml.Node
		if len(doc.Content) > 0 {
			node = doc.Content[0]
		}
		if node != nil && isNull(node) {
			node = nil
		}
		switch {
		case n == 0:
			root = node
		case node != nil:
			return nil, &ConfigError{Line: node.Line, Err: errors.New("more than one YAML document")}
		}
	}
}

// decodeNode decodes the next document of dec, turning a panic of the
// parser into an error.
func decodeNode(dec *yaml.Decoder, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: parser failure: %v", r)
		}
	}()
	return dec.Decode(doc)
}

// yamlLine matches the position that the YAML parser puts in its errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlUnknownAnchor matches the YAML parser's error about an alias whose
// anchor is not defined, which comes without a line.
var yamlUnknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// yamlError turns an error of the YAML parser into a *ConfigError, moving
// the line the parser gives into Line. Where the parser gives none, the line
// of an unknown anchor's alias, or of a byte that is not UTF-8 or is a
// control character, is found in data; any other error without a line is on
// line 1 (the parser leaves out a position on its first line).
func yamlError(data []byte, err error) *ConfigError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if line, convErr := strconv.Atoi(m[1]); convErr == nil {
			return &ConfigError{Line: line, Err: errors.New("yaml: " + msg[len(m[0]):])}
		}
	}
	offset := -1
	if m := yamlUnknownAnchor.FindStringSubmatch(msg); m != nil {
		offset = aliasOffset(data, m[1])
	} else {
		offset = badCharOffset(data)
	}
	if offset < 0 {
		return &ConfigError{Line: 1, Err: err}
	}
	return &ConfigError{Line: 1 + bytes.Count(data[:offset], []byte("\n")), Err: err}
}

// aliasOffset returns the offset in data of the first alias *name, or -1.
func aliasOffset(data []byte, name string) int {
	alias := []byte("*" + name)
	for from := 0; ; {
		i := bytes.Index(data[from:], alias)
		if i < 0 {
			return -1
		}
		end := from + i + len(alias)
		if end == len(data) || bytes.IndexByte([]byte(" \t\r\n,]}"), data[end]) >= 0 {
			return from + i
		}
		from = end
	}
}

// badCharOffset returns the offset of the first character in data that a
// YAML parser rejects (invalid UTF-8, a control character other than tab,
// CR and LF), or -1. Input in UTF-16, which starts with its byte order mark,
// is not searched.
func badCharOffset(data []byte) int {
	if bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) {
		return -1
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1,
			r < 0x20 && r != '\t' && r != '\n' && r != '\r',
			r >= 0x7f && r < 0xa0 && r != 0x85,
			r == 0xfffe || r == 0xffff:
			return i
		}
		i += size
	}
	return -1
}

// findAlias returns the first alias in the tree of n, in document order, or
// nil. Aliases are refused: each one would be walked again, and a few
// kilobytes of nested aliases stand for gigabytes of hooks.
func findAlias(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		return n
	}
	for _, c := range n.Content {
		if a := findAlias(c); a != nil {
			return a
		}
	}
	return nil
}

// isNull reports whether n is a null: "~", "null" or no value at all.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of a YAML node for error messages: "a list",
// "a string", "null".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.DocumentNode:
		return "a document"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!str":
			return "a string"
		case "!!timestamp":
			return "a timestamp"
		case "!!binary":
			return "binary data"
		default:
			return "a value tagged " + strconv.Quote(tag)
		}
	}
	return "an unknown kind of YAML node"
}

// describeValue is describe with the value of a scalar, for fields whose
// values are no secret.
func describeValue(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return describe(n)
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return describe(n) + " " + strconv.Quote(v)
}

// hookSequence finds the list of hooks in the root node of the document.
func hookSequence(root *yaml.Node) (*yaml.Node, []*ConfigError) {
	if root == nil {
		return nil, nil
	}
	switch root.Kind {
	case yaml.SequenceNode:
		return root, nil
	case yaml.MappingNode:
	default:
		return nil, []*ConfigError{{Line: root.Line, Err: fmt.Errorf("want a list of hooks, not %s", describe(root))}}
	}

	var (
		errs      []*ConfigError
		hooks     *yaml.Node
		hooksLine int
		hasType   bool
	)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, &ConfigError{Line: k.Line, Err: fmt.Errorf("a key must be a string, not %s", describe(k))})
			continue
		}
		switch k.Value {
		case "hooks":
			if hooks != nil {
				errs = append(errs, &ConfigError{Line: k.Line, Field: "hooks", Err: fmt.Errorf("duplicate key (first on line %d)", hooksLine)})
				continue
			}
			hooks, hooksLine = v, k.Line
		case "type":
			hasType = true
			fallthrough
		default:
			errs = append(errs, &ConfigError{Line: k.Line, Field: k.Value, Err: errors.New(`unknown key: the document must be a list of hooks, or a mapping with the single key "hooks" holding that list`)})
		}
	}
	if hooks == nil && hasType {
		// A single hook where a list was expected: say so once.
		return nil, []*ConfigError{{Line: root.Line, Err: errors.New(`want a list of hooks, not a single hook: start it with "- "`)}}
	}
	if hooks == nil {
		return nil, errs
	}
	switch {
	case hooks.Kind == yaml.SequenceNode:
		return hooks, errs
	case isNull(hooks):
		return nil, errs
	default:
		errs = append(errs, &ConfigError{Line: hooks.Line, Field: "hooks", Err: fmt.Errorf("must be a list of hooks, not %s", describe(hooks))})
		return nil, errs
	}
}

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
