package hooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// hookKeys are the keys of a hook mapping, for error messages.
const hookKeys = "type, path, dsn, timeout, err_is_fatal, filesystems, post_on_pre_error, skip_exit_code"

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
func ParseHookList(data []byte) (HookList, error) {
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

// parseHook decodes hook number num from node and checks it.
func parseHook(num int, item *yaml.Node) (HookConfig, []*ConfigError) {
	var (
		c           HookConfig
		errs        []*ConfigError
		seen        = map[string]int{} // key → line of its first occurrence
		valueLine   = map[string]int{} // key → line of its value
		patternLine = map[string]int{} // filesystems pattern → line of its key
		reported    = map[string]bool{}
	)
	fail := func(field string, line int, format string, args ...any) {
		errs = append(errs, &ConfigError{Hook: num, Field: field, Line: line, Err: fmt.Errorf(format, args...)})
		reported[field] = true
	}

	node := item
	if node.Kind != yaml.MappingNode {
		fail("", item.Line, "a hook must be a mapping of its settings (%s), not %s", hookKeys, describe(node))
		return c, errs
	}

	// str decodes a string field that must not be empty.
	str := func(key string, v *yaml.Node) string {
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			fail(key, v.Line, "must be a string, not %s", describe(v))
			return ""
		}
		if v.Value == "" {
			fail(key, v.Line, "must not be empty")
		}
		return v.Value
	}
	// boolean decodes a boolean field, or the value of a pattern if what
	// names it. A null is no boolean: a forgotten value must not turn
	// something off.
	boolean := func(key, what string, v *yaml.Node) (bool, bool) {
		var b bool
		if v.Kind != yaml.ScalarNode || isNull(v) || v.Decode(&b) != nil {
			fail(key, v.Line, "%smust be true or false, not %s", what, describeValue(v))
			return false, false
		}
		return b, true
	}

	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			fail("", k.Line, "a key must be a string, not %s", describe(k))
			continue
		}
		key := k.Value
		if first, dup := seen[key]; dup {
			fail(key, k.Line, "duplicate key (first on line %d)", first)
			continue
		}
		seen[key] = k.Line
		valueLine[key] = v.Line

		switch key {
		case "type":
			c.Type = str(key, v)
		case "path":
			c.Path = str(key, v)
		case "dsn":
			c.DSN = str(key, v)
		case "err_is_fatal":
			c.ErrIsFatal, _ = boolean(key, "", v)
		case "post_on_pre_error":
			c.PostOnPreError, _ = boolean(key, "", v)
		case "timeout":
			if v.Kind != yaml.ScalarNode || isNull(v) {
				fail(key, v.Line, `must be a duration such as "30s", not %s`, describe(v))
				break
			}
			d, err := time.ParseDuration(v.Value)
			if err != nil {
				fail(key, v.Line, `%s is not a duration (write it like "30s" or "1m30s")`, strconv.Quote(v.Value))
				break
			}
			c.Timeout = d
		case "filesystems":
			if v.Kind != yaml.MappingNode {
				fail(key, v.Line, "must be a mapping of dataset patterns to true or false, not %s", describe(v))
				break
			}
			c.Filesystems = make(map[string]bool, len(v.Content)/2)
			for j := 0; j+1 < len(v.Content); j += 2 {
				pk, pv := v.Content[j], v.Content[j+1]
				if pk.Kind != yaml.ScalarNode || isNull(pk) {
					fail(key, pk.Line, "a pattern must be a string, not %s", describe(pk))
					continue
				}
				pattern := pk.Value
				if first, dup := patternLine[pattern]; dup {
					fail(key, pk.Line, "duplicate pattern %q (first on line %d)", pattern, first)
					continue
				}
				patternLine[pattern] = pk.Line
				pass, ok := boolean(key, fmt.Sprintf("pattern %q: ", pattern), pv)
				if ok {
					c.Filesystems[pattern] = pass
				}
			}
		case "skip_exit_code":
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || v.Decode(&c.SkipExitCode) != nil {
				fail(key, v.Line, "must be an exit status from 1 to 255, not %s", describeValue(v))
				break
			}
			if c.SkipExitCode == 0 {
				fail(key, v.Line, "0 is not an exit status from 1 to 255 (leave the key out for none)")
			}
		case "<<":
			fail(key, k.Line, "YAML merge keys are not supported")
		default:
			fail(key, k.Line, "unknown key (want one of %s)", hookKeys)
		}
	}

	for _, p := range c.problems() {
		if p.pattern == "" && reported[p.field] {
			continue // the value was rejected above; do not complain twice
		}
		line := item.Line // a missing field: the start of the hook
		if p.pattern != "" {
			line = patternLine[p.pattern]
		} else if l, ok := valueLine[p.field]; ok {
			line = l
		}
		errs = append(errs, &ConfigError{Hook: num, Field: p.field, Line: line, Err: p.err})
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	return c, errs
}
