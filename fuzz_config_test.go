package hooks

import (
	"errors"
	"strings"
	"testing"
)

func FuzzNewDatasetPath(f *testing.F) {
	for _, s := range []string{"", "tank", "tank/db/data", "tank/my data", "tank@snap", "tank/", "/tank", "tank//a", "tank\x00", "tank\tx", "tank/données", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := NewDatasetPath(s)
		if err != nil {
			if p != nil {
				t.Fatalf("NewDatasetPath(%q) returned a path and an error", s)
			}
			if err.Error() == "" {
				t.Fatalf("NewDatasetPath(%q): empty error text", s)
			}
			return
		}
		if got := p.ToString(); got != s {
			t.Fatalf("NewDatasetPath(%q).ToString() = %q", s, got)
		}
		q, err := NewDatasetPath(p.ToString())
		if err != nil {
			t.Fatalf("round trip of %q: %v", s, err)
		}
		if !p.Equal(q) || !q.Equal(p) {
			t.Fatalf("round trip of %q is not Equal", s)
		}
		if want := strings.Count(s, "/") + 1; s != "" && p.Length() != want {
			t.Fatalf("Length(%q) = %d, want %d", s, p.Length(), want)
		}
		if !p.HasPrefix(p) || !p.HasPrefix(&DatasetPath{}) {
			t.Fatalf("%q is not prefixed by itself and the empty path", s)
		}
		if !p.Copy().Equal(p) {
			t.Fatalf("Copy of %q differs", s)
		}
	})
}

// naiveFilter is the rule of DatasetMapFilter written plainly: an exact
// pattern decides; else the subtree pattern with the most components that is
// a prefix of path; else false.
func naiveFilter(patterns map[string]bool, path string) bool {
	if pass, ok := patterns[path]; ok { // path has no "<": an exact pattern
		return pass
	}
	best, pass := -1, false
	for pattern, v := range patterns {
		name, ok := strings.CutSuffix(pattern, "<")
		if !ok {
			continue
		}
		if name != "" && path != name && !strings.HasPrefix(path, name+"/") {
			continue
		}
		n := 0
		if name != "" {
			n = strings.Count(name, "/") + 1
		}
		if n > best {
			best, pass = n, v
		}
	}
	return pass
}

func FuzzDatasetMapFilter(f *testing.F) {
	f.Add("tank<\ntank/foo<\ntank/foo/bar", uint64(0b101), "tank/foo/bar/loo")
	f.Add("tank<\ntank/foo<\ntank/foo/bar", uint64(0b101), "tank/var/log")
	f.Add("<", uint64(1), "")
	f.Add("<\ntank", uint64(0b10), "tank")
	f.Add("tank<<", uint64(1), "tank")
	f.Add("tank</a", uint64(1), "tank/a")
	f.Add("tank/<", uint64(1), "tank/a")
	f.Add(" tank<", uint64(1), "tank")
	f.Add("tank<", uint64(1), "tank@snap")
	f.Fuzz(func(t *testing.T, list string, passBits uint64, path string) {
		patterns := map[string]bool{}
		for i, pattern := range strings.Split(list, "\n") {
			patterns[pattern] = passBits&(1<<(uint(i)%64)) != 0
		}
		filter, err := DatasetMapFilterFromConfig(patterns)
		if err != nil {
			if filter != nil || err.Error() == "" {
				t.Fatalf("bad error result for %q: %v, %v", list, filter, err)
			}
			return
		}
		if got := filter.Patterns(); len(got) != len(patterns) {
			t.Fatalf("Patterns() = %v, want %v", got, patterns)
		}
		_ = filter.String()

		p, err := NewDatasetPath(path)
		if err != nil {
			return
		}
		pass, err := filter.Filter(p)
		if err != nil {
			t.Fatalf("valid filter %v failed on valid path %q: %v", patterns, path, err)
		}
		if want := naiveFilter(patterns, path); pass != want {
			t.Fatalf("filter %v on %q = %v, want %v", patterns, path, pass, want)
		}
	})
}

// fuzzTouchesFiles reports whether input may make the PostgreSQL driver's
// parser read files (service files, password files, certificates): a fuzzer
// that finds "sslrootcert=/dev/zero" would hang. Escapes are excluded too,
// since they can spell those keys.
func fuzzTouchesFiles(input []byte) bool {
	s := strings.ToLower(string(input))
	for _, word := range []string{"service", "passfile", "ssl", `\`, "%"} {
		if strings.Contains(s, word) {
			return true
		}
	}
	return false
}

func FuzzParseHookList(f *testing.F) {
	seeds := []string{
		"",
		"[]",
		"hooks: []",
		fullJSON,
		"- type: command\n  path: /bin/true\n  timeout: 5s\n  err_is_fatal: true\n  filesystems: {tank<: true}\n",
		"- type: postgres-checkpoint\n  dsn: host=db password=x\n  filesystems: {tank/pg<: true}\n",
		"- type: postgres-checkpoint\n  dsn: postgres://u:p@db:5432/x\n  filesystems: {tank/pg<: true}\n",
		"- type: mysql-lock-tables\n  dsn: u:p@tcp(db:3306)/\n  filesystems: {tank/my<: true, tank/my/tmp: false}\n",
		"- type: command\n  path: bin/x\n- type: frob\n- {type: mysql-lock-tables, dsn: 'u:p@tcp(db'}\n",
		"- &a {type: command, path: /bin/true}\n- *a\n- <<: *a\n",
		"type: command\npath: /bin/true\n",
		"- type: command\n  path: a: b\n",
		"- type: command\n  path: /bin/true\n  err_is_fatal:\n  filesystems: {tank<: }\n  skip_exit_code: 3\n",
		"- type: command\n  path: *nope\n",
		"- type: command\n  path: /bin/\xff\n",
		"- type: postgres-checkpoint\n  dsn: postgres://u:p@ss@db/x\n  filesystems: {<: true}\n  timeout: 600h\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if fuzzTouchesFiles(data) {
			t.Skip()
		}
		list, err := ParseHookList(data)
		if err != nil {
			if list != nil {
				t.Fatalf("list and error returned: %v", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("errors are not joined: %T %v", err, err)
			}
			for _, e := range joined.Unwrap() {
				var ce *ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("error is not a *ConfigError: %T %v", e, e)
				}
				if ce.Line <= 0 {
					t.Fatalf("error without a line: %v", ce)
				}
			}
			return
		}
		if list == nil {
			t.Fatal("nil list without error")
		}
		for i, c := range list {
			if err := c.Validate(); err != nil {
				t.Fatalf("hook #%d passed ParseHookList but not Validate: %v", i+1, err)
			}
		}
		// What parses must build: ListFromConfig applies the defaults and
		// creates every hook without touching a database.
		hooks, err := ListFromConfig(&list)
		if err != nil {
			t.Fatalf("ListFromConfig of a parsed list: %v", err)
		}
		if len(*hooks) != len(list) {
			t.Fatalf("ListFromConfig made %d hooks of %d", len(*hooks), len(list))
		}
	})
}

// FuzzParseHookListHidesPasswords puts a password into any text and checks
// that no error, String, log record or hook name about a database hook with
// that DSN shows it, unless the driver parsed it as the user, host, port or
// database of the hook's target (a DSN that says so shows it there).
func FuzzParseHookListHidesPasswords(f *testing.F) {
	for _, dsn := range []string{
		"postgres://backup:%s@db:5432/postgres",
		"postgres://backup:%s@db:x/postgres",
		"postgres://backup:Hunter2@%s@db/postgres",
		"postgres://db/postgres?sslmode=bogus&password=%s",
		"host=db user=backup password=%s",
		"host=db password='%s x' port=x",
		"password=%s target_session_attrs=%s",
		"backup:%s@tcp(db:3306)/",
		"backup:%s@tcp(db:3306",
		"backup:x@%s/",
		"backup:%s@tcp(db)/?parseTime=%s",
	} {
		before, after, _ := strings.Cut(dsn, "%s")
		f.Add(strings.HasPrefix(dsn, "backup:"), before, after)
	}
	const secret = "Qz7SecretPw"
	f.Fuzz(func(t *testing.T, mysql bool, before, after string) {
		dsn := before + secret + after
		if fuzzTouchesFiles([]byte(dsn)) {
			t.Skip()
		}
		typ := TypePostgresCheckpoint
		if mysql {
			typ = TypeMySQLLockTables
		}
		if target, err := dsnTarget(typ, dsn); err == nil && strings.Contains(target, secret) {
			return // the DSN puts it where no password belongs
		}
		for _, text := range configTexts(t, HookConfig{Type: typ, DSN: dsn, Filesystems: map[string]bool{"<": true}}) {
			if strings.Contains(text, secret) {
				t.Fatalf("%s DSN %q: the password shows in %q", typ, dsn, text)
			}
		}
	})
}
