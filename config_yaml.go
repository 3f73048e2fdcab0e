package hooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
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
