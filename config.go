package hooks

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The hook types, as written in the "type" key of a hook's configuration.
const (
	// TypeCommand runs an executable (see CommandHook).
	TypeCommand = "command"
	// TypePostgresCheckpoint runs CHECKPOINT on a PostgreSQL server before the
	// snapshot (see PgChkptHook).
	TypePostgresCheckpoint = "postgres-checkpoint"
	// TypeMySQLLockTables holds FLUSH TABLES WITH READ LOCK on a MySQL or
	// MariaDB server across the snapshot (see MySQLLockTables).
	TypeMySQLLockTables = "mysql-lock-tables"
	// TypeMariaDBBackupStage holds MariaDB's backup locks (BACKUP STAGE up to
	// BLOCK_COMMIT) across the snapshot; it takes the same keys as
	// TypeMySQLLockTables (see MariaDBBackupStage).
	TypeMariaDBBackupStage = "mariadb-backup-stage"
	// TypeFSFreeze flushes and freezes filesystems of this host (FIFREEZE)
	// across the snapshot and thaws them after it (see FSFreezeHook).
	TypeFSFreeze = "fsfreeze"
	// TypeQEMUGuestAgent freezes the filesystems of a virtual machine through
	// its QEMU guest agent across the snapshot (see QGAFreezeHook).
	TypeQEMUGuestAgent = "qemu-guest-agent"
)

// DefaultMaxFreeze is the max_freeze of a freeze hook whose configuration
// gives none (or gives 0).
const DefaultMaxFreeze = 10 * time.Second

// MaxMaxFreeze is the longest max_freeze a freeze hook may have; a longer one
// is an error of the configuration. Every writer of a frozen filesystem
// waits while it is frozen: a freeze that outlasts a few seconds stalls the
// applications on it, and one of minutes looks like a hung machine.
const MaxMaxFreeze = 10 * time.Minute

// DefaultHookTimeout is the timeout of a hook whose configuration gives none
// (or gives 0).
const DefaultHookTimeout = 30 * time.Second

// MaxHookTimeout is the largest timeout a hook may have; a longer one is an
// error of the configuration. An edge runs while a snapshot waits for it: a
// day is far beyond any sensible pre or post edge, and it keeps every bound
// derived from the timeout within what the other side accepts (PostgreSQL's
// statement_timeout is at most 2147483647 ms, about 24.8 days) and far from
// overflowing a time.Duration.
const MaxHookTimeout = 24 * time.Hour

// HookConfig is one entry of a hook list, as written in a configuration file
// (see ParseHookList) or built in Go. Validate checks it; WithDefaults fills
// in what was left out. HookFromConfig and ListFromConfig do both.
//
// String and LogValue show a DSN only by the user, host, port and database
// its driver parsed from it, never its password; MarshalJSON and the YAML
// encoding write the DSN as it is, because they are meant to write
// configuration files.
type HookConfig struct {
	// Type is the kind of hook, YAML key "type": TypeCommand,
	// TypePostgresCheckpoint, TypeMySQLLockTables or TypeMariaDBBackupStage.
	// Required.
	Type string `yaml:"type" json:"type"`

	// ErrIsFatal, YAML key "err_is_fatal", makes a failure of the hook's Pre
	// edge stop the plan: no later Pre edge and no callback run (the Post
	// edges of the hooks before it still do). Default false.
	ErrIsFatal bool `yaml:"err_is_fatal,omitempty" json:"err_is_fatal,omitempty"`

	// Timeout bounds each edge of the hook, YAML key "timeout", written as a
	// Go duration such as "30s" or "1m30s". 0 means DefaultHookTimeout;
	// a negative timeout, or one above MaxHookTimeout, is an error.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`

	// Filesystems, YAML key "filesystems", maps dataset patterns to whether
	// the hook runs for the datasets they match (see DatasetMapFilter).
	// Optional for command hooks, where it defaults to {"<": true} (every
	// dataset); required and non-empty for the database hooks.
	Filesystems map[string]bool `yaml:"filesystems,omitempty" json:"filesystems,omitempty"`

	// PostOnPreError, YAML key "post_on_pre_error", makes the hook's Post edge
	// run whenever its Pre edge ran, even if the Pre edge failed. Default
	// false, as in zrepl: a failed Pre edge skips its Post edge.
	PostOnPreError bool `yaml:"post_on_pre_error,omitempty" json:"post_on_pre_error,omitempty"`

	// Path, YAML key "path", is the absolute path of the executable of a
	// command hook. Required for command hooks, not allowed for the others.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`

	// DSN, YAML key "dsn", says how to connect to the database of a
	// postgres-checkpoint hook (a libpq connection string: keyword/value
	// "host=db user=backup password=..." or URL "postgres://...") or of a
	// mysql-lock-tables or mariadb-backup-stage hook (a go-sql-driver/mysql
	// DSN "user:password@tcp(db:3306)/"). Required for those, not allowed for
	// command hooks.
	DSN string `yaml:"dsn,omitempty" json:"dsn,omitempty"`

	// SkipExitCode, YAML key "skip_exit_code", is an exit status (1 to 255)
	// with which the Pre edge of a command hook says "do not take this
	// snapshot": the snapshot is skipped without an error, and the Post edges
	// of the earlier hooks still run. 0, the default, means no such status:
	// every non-zero exit is an error. Only for command hooks.
	SkipExitCode int `yaml:"skip_exit_code,omitempty" json:"skip_exit_code,omitempty"`

	// Coverage, YAML key "coverage", says what a database hook does when the
	// snapshot may not hold every file of its server (see CheckCoverage):
	// CoverageWarn ("warn", the default: "" means it), CoverageStrict
	// ("strict") or CoverageOff ("off"). Only for database hooks.
	Coverage string `yaml:"coverage,omitempty" json:"coverage,omitempty"`

	// Mountpoints, YAML key "mountpoints", are the absolute mount points to
	// freeze, in the order they are frozen. Required for fsfreeze hooks
	// (mount points of this host); optional for qemu-guest-agent hooks
	// (mount points inside the guest; none: every filesystem of the guest).
	// Not allowed for other hooks.
	Mountpoints []string `yaml:"mountpoints,omitempty" json:"mountpoints,omitempty"`

	// MaxFreeze, YAML key "max_freeze", is the longest the filesystems of a
	// freeze hook stay frozen: past it they are thawed whatever else happens,
	// and the Post edge reports an error. 0 means DefaultMaxFreeze; at most
	// MaxMaxFreeze. Only for fsfreeze and qemu-guest-agent hooks.
	MaxFreeze time.Duration `yaml:"max_freeze,omitempty" json:"max_freeze,omitempty"`

	// Socket, YAML key "socket", is the absolute path of the host end of a
	// guest agent's channel (Proxmox: /var/run/qemu-server/<vmid>.qga).
	// Required for qemu-guest-agent hooks, not allowed for others.
	Socket string `yaml:"socket,omitempty" json:"socket,omitempty"`
}

// HookList is a list of hook configurations in the order the hooks run
// their Pre edges.
type HookList []HookConfig

// ConfigError is an error in a hook configuration, with its position as far
// as it is known:
//
//	hook #2 (line 7): path: "bin/x" is not absolute
//
// The parts that are unknown or do not apply are left out: an error about
// the document as a whole has no hook number ("line 1: ..."), an error about
// a hook as a whole has no field, and HookConfig.Validate, which knows
// neither hook number nor line, gives the field alone ("path: ...").
type ConfigError struct {
	Hook  int    // 1-based number of the hook in the list; 0 outside any hook
	Field string // the YAML key concerned; "" for a hook or document as a whole
	Line  int    // 1-based line of the offending value or key; 0 if unknown
	Err   error  // what is wrong
}

// Error returns the error in the format shown at ConfigError.
func (e *ConfigError) Error() string {
	var b strings.Builder
	switch {
	case e.Hook > 0 && e.Line > 0:
		fmt.Fprintf(&b, "hook #%d (line %d): ", e.Hook, e.Line)
	case e.Hook > 0:
		fmt.Fprintf(&b, "hook #%d: ", e.Hook)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(fieldLabel(e.Field))
		b.WriteString(": ")
	}
	b.WriteString(errText(e.Err))
	return b.String()
}

// Unwrap returns e.Err.
func (e *ConfigError) Unwrap() error { return e.Err }

// plainField matches the field names that an error message shows unquoted.
var plainField = regexp.MustCompile(`^[A-Za-z0-9_<>/.:-]+$`)

// fieldLabel returns the name of a field for an error message, quoted when
// it is not a plain word (an unknown key may hold anything).
func fieldLabel(field string) string {
	if plainField.MatchString(field) {
		return field
	}
	return strconv.Quote(field)
}

func errText(err error) string {
	if err == nil {
		return "invalid"
	}
	return err.Error()
}

// Validate checks c as HookFromConfig needs it, whether c was built in Go or
// parsed: the type is known; a command hook has an absolute Path and no DSN;
// a database hook has a DSN that its driver can parse (pgx.ParseConfig,
// mysql.ParseDSN), a non-empty Filesystems, no Path and no SkipExitCode;
// Timeout is between 0 and MaxHookTimeout; SkipExitCode is 0 or 1 to 255;
// Coverage is empty or, for a database hook, one of its values; an fsfreeze
// hook has Mountpoints, a qemu-guest-agent hook a Socket, both absolute
// paths, and MaxFreeze is between 0 and MaxMaxFreeze and set only for those
// two types, which also need a non-empty Filesystems; every pattern of Filesystems is valid (see DatasetMapFilterFromConfig).
//
// It returns nil or a *ConfigError with the Field of the first problem, in
// the order of the fields of HookConfig. The error never contains any part
// of a DSN that does not parse. Validate does not apply defaults: it accepts
// a zero Timeout and, for command hooks, nil Filesystems.
func (c HookConfig) Validate() error {
	if ps := c.problems(); len(ps) > 0 {
		return &ConfigError{Field: ps[0].field, Err: ps[0].err}
	}
	return nil
}

// WithDefaults returns c with the defaults applied: a zero Timeout becomes
// DefaultHookTimeout, a freeze hook's zero MaxFreeze becomes
// DefaultMaxFreeze, and a command hook without Filesystems (nil or empty)
// gets {"<": true}, every dataset. The Filesystems of the result is a copy,
// so the result shares no map with c. It does not validate c.
func (c HookConfig) WithDefaults() HookConfig {
	if c.Timeout == 0 {
		c.Timeout = DefaultHookTimeout
	}
	if c.MaxFreeze == 0 && slices.Contains(freezeTypes, c.Type) {
		c.MaxFreeze = DefaultMaxFreeze
	}
	if c.Mountpoints != nil {
		c.Mountpoints = slices.Clone(c.Mountpoints)
	}
	switch {
	case c.Type == TypeCommand && len(c.Filesystems) == 0:
		c.Filesystems = map[string]bool{subtreeMarker: true}
	case c.Filesystems != nil:
		c.Filesystems = maps.Clone(c.Filesystems)
	}
	return c
}

// String describes c on one line, as key=value pairs. A DSN is shown as the
// target its driver parsed from it (target=user@host:port/database), never
// as text: an unparsable DSN shows as "(unparsable DSN)".
func (c HookConfig) String() string {
	var b strings.Builder
	field := func(key, value string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(key)
		b.WriteByte('=')
		if value == "" || strings.ContainsAny(value, " \"=\\") || !strconv.CanBackquote(value) {
			value = strconv.Quote(value)
		}
		b.WriteString(value)
	}
	field("type", c.Type)
	if c.Path != "" {
		field("path", c.Path)
	}
	if c.DSN != "" {
		field("target", c.target())
	}
	field("timeout", c.Timeout.String())
	field("err_is_fatal", strconv.FormatBool(c.ErrIsFatal))
	field("post_on_pre_error", strconv.FormatBool(c.PostOnPreError))
	if c.SkipExitCode != 0 {
		field("skip_exit_code", strconv.Itoa(c.SkipExitCode))
	}
	if c.Coverage != "" {
		field("coverage", c.Coverage)
	}
	if c.Socket != "" {
		field("socket", c.Socket)
	}
	if c.Mountpoints != nil {
		field("mountpoints", strings.Join(c.Mountpoints, ","))
	}
	if c.MaxFreeze != 0 {
		field("max_freeze", c.MaxFreeze.String())
	}
	if c.Filesystems != nil {
		field("filesystems", formatPatterns(c.Filesystems))
	}
	return b.String()
}

// LogValue implements slog.LogValuer: c is logged as a group of its fields,
// with the DSN shown as its target, as in String.
func (c HookConfig) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("type", c.Type)}
	if c.Path != "" {
		attrs = append(attrs, slog.String("path", c.Path))
	}
	if c.DSN != "" {
		attrs = append(attrs, slog.String("target", c.target()))
	}
	attrs = append(attrs,
		slog.Duration("timeout", c.Timeout),
		slog.Bool("err_is_fatal", c.ErrIsFatal),
		slog.Bool("post_on_pre_error", c.PostOnPreError),
	)
	if c.SkipExitCode != 0 {
		attrs = append(attrs, slog.Int("skip_exit_code", c.SkipExitCode))
	}
	if c.Coverage != "" {
		attrs = append(attrs, slog.String("coverage", c.Coverage))
	}
	if c.Socket != "" {
		attrs = append(attrs, slog.String("socket", c.Socket))
	}
	if c.Mountpoints != nil {
		attrs = append(attrs, slog.Any("mountpoints", c.Mountpoints))
	}
	if c.MaxFreeze != 0 {
		attrs = append(attrs, slog.Duration("max_freeze", c.MaxFreeze))
	}
	if c.Filesystems != nil {
		attrs = append(attrs, slog.String("filesystems", formatPatterns(c.Filesystems)))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes c as the JSON object that ParseHookList reads back:
// the keys of the YAML form, with the timeout
// and max_freeze as duration strings ("30s") rather than the nanoseconds
// encoding/json would write. The DSN is written
// as it is, password included.
func (c HookConfig) MarshalJSON() ([]byte, error) {
	type fields HookConfig // the fields without the methods
	var timeout, maxFreeze string
	if c.Timeout != 0 {
		timeout = c.Timeout.String()
	}
	if c.MaxFreeze != 0 {
		maxFreeze = c.MaxFreeze.String()
	}
	return json.Marshal(struct {
		fields
		Timeout   string `json:"timeout,omitempty"`
		MaxFreeze string `json:"max_freeze,omitempty"`
	}{fields(c), timeout, maxFreeze})
}

// target returns the target of c's DSN (see dsnTarget), or a fixed text if
// it does not parse. The DSN of a command hook, which is an error, is never
// shown either.
func (c HookConfig) target() string {
	t, err := dsnTarget(c.Type, c.DSN)
	if err != nil || t == "" {
		return unparsableTarget
	}
	return t
}
