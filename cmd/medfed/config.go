package main

// Configuration is read in four layers, each overriding the one before:
//
//  1. centre.DefaultConfig();
//  2. the YAML file given with --config, if any;
//  3. MEDFED_* environment variables, one per key: MEDFED_ + the key in upper
//     case with "." and "-" turned into "_" (MEDFED_DATA_DIR,
//     MEDFED_LEDGER_MAX_BATCH; a list such as MEDFED_P2P_LISTEN is
//     comma-separated). A variable that is set counts, even when empty;
//  4. flags that were set on the command line and bound to a key with
//     bindFlag.
//
// The keys are not listed here: they are the mapstructure tags of
// centre.Config, found by reflection, so a new field there is a new key, a new
// variable and a new line in error messages without a change here.
//
// A list of mappings, such as pseudonym.systems, can be written only in the
// file: a comma-separated variable or a flag has no spelling for it that a
// user would get right, so setting its variable is an error and bindFlag
// refuses it. Its entries are as strict as the rest: an unknown key in one
// is reported as pseudonym.systems[1].nmae.
//
// Every layer is strict. An unknown key is an error, not a typo silently
// ignored; a value of the wrong type is an error, not converted (a bool is
// not an integer, a YAML number is not a string, a scalar is not a one-item
// list, an integer is not a duration). Every problem in the file and the
// environment is collected, then centre.Config.Validate adds its own, and the
// user sees them all at once.
//
// Paths (fields of centre.Config tagged config:"path", such as data.dir): a
// relative path in the file is relative to the directory holding the file,
// so `medfed node --config configs/centre-a.yaml` means the same from any
// working directory; a relative path from the environment or a flag is
// relative to the working directory, as a shell user expects. Either way the
// loaded path is absolute.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/medfed/medfed/node/centre"
)

const configHelp = `Configuration comes from, in increasing precedence: built-in defaults, the
YAML file given with --config, MEDFED_* environment variables and flags.
Each key has a variable: MEDFED_ followed by the key in upper case with "."
and "-" replaced by "_", e.g. data.dir is MEDFED_DATA_DIR and
ledger.max-batch is MEDFED_LEDGER_MAX_BATCH; lists such as p2p.listen are
comma-separated. Lists of mappings, such as pseudonym.systems (identifier
systems besides the NHS number), can be set in the file only. A relative
path in the file is relative to the file's directory; from the environment
or a flag, to the working directory.`

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a centre's configuration",
		Long:  "Check a centre's configuration.\n\n" + configHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(newConfigCheckCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check [--config FILE]",
		Short: "Load and validate a configuration, reporting every problem",
		Long: "Load and validate a configuration and report every problem, each naming\nits key. Exits 2 if there is any.\n\n" +
			configHelp,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("%s takes no arguments: give the file with --config", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, path)
			if err != nil {
				return err
			}
			rules, err := cfg.Pseudonym.Rules()
			if err != nil { // Validate has accepted the systems
				return err
			}
			var systems []string
			for _, s := range rules.Systems() {
				systems = append(systems, s.Name+" "+s.URI)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (centre %s, federation %s, data %s)\nidentifier systems: %s\n",
				configSource(path), cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir, strings.Join(systems, ", "))
			return err
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "YAML configuration `file` (default none: defaults, MEDFED_* variables and flags only)")
	return cmd
}

// configFlagKey is the pflag annotation under which bindFlag records the
// config key a flag sets; keeping it on the flag itself needs no global map.
const configFlagKey = "medfed/config-key"

// bindFlag marks flag name of cmd as setting config key (e.g.
// bindFlag(cmd, "data", "data.dir")). The flag overrides the file and the
// environment only when it is given on the command line. It panics if the
// flag or the key does not exist, or if the key can be set in the file only:
// that is a programming error.
func bindFlag(cmd *cobra.Command, flag, key string) {
	k := configKeys().leaf[key]
	if k == nil {
		panic(fmt.Sprintf("bindFlag: %q is not a config key", key))
	}
	if k.fileOnly {
		panic(fmt.Sprintf("bindFlag: %q can be set in the configuration file only", key))
	}
	if err := cmd.Flags().SetAnnotation(flag, configFlagKey, []string{key}); err != nil {
		panic(fmt.Sprintf("bindFlag: %v", err))
	}
}

// loadConfig builds a centre.Config from, in increasing precedence:
// centre.DefaultConfig(), the YAML file at path (may be "" = no file), MEDFED_*
// environment variables, and flags of the command that were explicitly set
// and bound to a config key with bindFlag. cmd may be nil: no flags.
//
// Every error is a usageError. A configuration that does not load or does not
// validate gives one that wraps a centre.ConfigErrors with every problem.
func loadConfig(cmd *cobra.Command, path string) (centre.Config, error) {
	schema := configKeys()
	values := make(map[string]reflect.Value) // by key: the value of the strongest layer
	var problems centre.ConfigErrors

	if path != "" {
		file, err := readConfigFile(path)
		if err != nil {
			return centre.Config{}, err
		}
		dir, err := filepath.Abs(filepath.Dir(path))
		if err != nil {
			return centre.Config{}, usagef("%s: %v", path, err)
		}
		problems = schema.decodeFile(file, "", dir, values, problems)
	}

	for _, k := range schema.keys {
		s, ok := os.LookupEnv(k.env)
		if !ok {
			continue
		}
		if k.fileOnly {
			problems = append(problems, centre.FieldError{Field: k.name, Problem: k.env + ": cannot be set from the environment: write it in the configuration file"})
			continue
		}
		v, err := parseEnvValue(s, k.typ)
		if err != nil {
			problems = append(problems, centre.FieldError{Field: k.name, Problem: k.env + ": " + err.Error()})
			continue
		}
		if values[k.name], err = k.resolvePaths(v, ""); err != nil {
			problems = append(problems, centre.FieldError{Field: k.name, Problem: k.env + ": " + err.Error()})
		}
	}

	if cmd != nil {
		// viper reads the flags: it knows each pflag type's value.
		v := viper.New()
		flagOf := make(map[string]string)
		cmd.Flags().Visit(func(f *pflag.Flag) { // only flags set on the command line
			if key := f.Annotations[configFlagKey]; len(key) == 1 {
				_ = v.BindPFlag(key[0], f) // fails only for a nil flag
				flagOf[key[0]] = f.Name
			}
		})
		for _, k := range schema.keys {
			if !v.IsSet(k.name) {
				continue
			}
			val, errs := decodeStrict(k.name, v.Get(k.name), k.typ)
			for _, fe := range errs {
				fe.Problem = "flag --" + flagOf[k.name] + ": " + fe.Problem
				problems = append(problems, fe)
			}
			if errs != nil {
				continue
			}
			var err error
			if values[k.name], err = k.resolvePaths(val, ""); err != nil {
				problems = append(problems, centre.FieldError{Field: k.name, Problem: "flag --" + flagOf[k.name] + ": " + err.Error()})
			}
		}
	}

	cfg := centre.DefaultConfig()
	root := reflect.ValueOf(&cfg).Elem()
	for _, k := range schema.keys {
		if v, ok := values[k.name]; ok && v.IsValid() {
			root.FieldByIndex(k.index).Set(v)
		}
	}
	// The default document types follow the classes a centre lists: a
	// class it does not record takes its type with it.
	if _, ok := values["records.types"]; !ok {
		cfg.Records.Types = slices.DeleteFunc(cfg.Records.Types, func(t centre.DocumentType) bool { return !slices.Contains(cfg.Records.Classes, t.Class) })
	}

	if err := cfg.Validate(); err != nil {
		var invalid centre.ConfigErrors
		if !errors.As(err, &invalid) {
			return centre.Config{}, usageError{fmt.Errorf("%s: %w", configSource(path), err)}
		}
		// A key, or a section, that did not load kept its default; do not
		// blame the default as well. Only what loading found counts: Validate
		// may report several items of one list.
		loaded := len(problems)
		for _, fe := range invalid {
			reported := func(p centre.FieldError) bool {
				b := configBaseKey(p.Field)
				return b == configBaseKey(fe.Field) || strings.HasPrefix(fe.Field, b+".")
			}
			if !slices.ContainsFunc(problems[:loaded], reported) {
				problems = append(problems, fe)
			}
		}
	}
	if len(problems) > 0 {
		schema.sort(problems)
		return centre.Config{}, usageError{&configError{source: configSource(path), problems: problems}}
	}
	return cfg, nil
}

// configError is a configuration that did not load, with every problem; its
// text puts each on its own line when there are several.
type configError struct {
	source   string // the file, or a phrase when there is none
	problems centre.ConfigErrors
}

func (e *configError) Error() string {
	if len(e.problems) == 1 {
		return e.source + ": " + e.problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", e.source, len(e.problems))
	for _, p := range e.problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

func (e *configError) Unwrap() error { return e.problems }

func configSource(path string) string {
	if path == "" {
		return "configuration (no file)"
	}
	return path
}

// readConfigFile reads the YAML file at path into nested maps, with keys in
// lower case as viper has them.
func readConfigFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("config file %s does not exist", path)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, usagef("config file %s: %v", path, err)
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			// Valid YAML, but a list or a scalar where the keys should be.
			line, _, _ := strings.Cut(te.Errors[0], ":")
			return nil, usagef("%s: %s: expected a mapping of keys such as centre: and data:", path, line)
		}
		var pe viper.ConfigParseError
		if errors.As(err, &pe) {
			err = pe.Unwrap()
		}
		return nil, usagef("%s: not valid YAML: %v", path, err)
	}
	return v.AllSettings(), nil
}

// A configKey is one leaf of centre.Config: a key a user can set.
type configKey struct {
	name  string // dotted, as written in YAML: "ledger.max-batch"
	env   string // MEDFED_LEDGER_MAX_BATCH
	index []int  // of the field within centre.Config
	typ   reflect.Type
	path  bool // tagged config:"path": resolve when relative
	// fileOnly is set for a list of mappings (a slice of structs), which
	// only the file can hold.
	fileOnly bool
}

// configSchema is every key of centre.Config, in declaration order, and the
// sections that hold them.
type configSchema struct {
	keys     []configKey
	leaf     map[string]*configKey
	children map[string][]string // section ("" for the top) -> its entries, in order
}

var configKeys = sync.OnceValue(func() *configSchema {
	s := &configSchema{leaf: make(map[string]*configKey), children: make(map[string][]string)}
	s.add(reflect.TypeFor[centre.Config](), "", nil)
	for i := range s.keys {
		s.leaf[s.keys[i].name] = &s.keys[i]
	}
	return s
})

var configDurationType = reflect.TypeFor[time.Duration]()

func (s *configSchema) add(t reflect.Type, section string, index []int) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		idx := append(slices.Clone(index), i)
		if tag == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && slices.Contains(strings.Split(opts, ","), "squash") {
			s.add(f.Type, section, idx)
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		name := tag
		if section != "" {
			name = section + "." + tag
		}
		s.children[section] = append(s.children[section], tag)
		if f.Type.Kind() == reflect.Struct {
			s.add(f.Type, name, idx)
			continue
		}
		fileOnly := configMappingList(f.Type)
		if !fileOnly && !configSettable(f.Type) {
			panic(fmt.Sprintf("config key %s: type %s cannot be set from a file or the environment", name, f.Type))
		}
		s.keys = append(s.keys, configKey{
			name:     name,
			env:      "MEDFED_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(name)),
			index:    idx,
			typ:      f.Type,
			path:     f.Tag.Get("config") == "path",
			fileOnly: fileOnly,
		})
	}
}

// configSettable reports whether parseEnvValue and strictDecodeHook know type t.
func configSettable(t reflect.Type) bool {
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// configMappingList reports whether t is a list of mappings that the file
// can hold: a slice of structs whose every key is a scalar or a list of
// scalars. Its keys are the structs' mapstructure tags.
func configMappingList(t reflect.Type) bool {
	if t.Kind() != reflect.Slice || t.Elem().Kind() != reflect.Struct {
		return false
	}
	for i := range t.Elem().NumField() {
		f := t.Elem().Field(i)
		if f.IsExported() && !configSettable(f.Type) {
			return false
		}
	}
	return true
}

// configStructKeys returns the keys of a mapping that decodes into struct
// type t, as mapstructure matches them.
func configStructKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		switch tag {
		case "-":
			continue
		case "":
			tag = strings.ToLower(f.Name)
		}
		keys = append(keys, tag)
	}
	return keys
}

// decodeMappingList decodes raw, from the file, into k's list of structs one
// entry at a time, so that each entry's unknown keys are reported after its
// known ones, as name[i].key.
func (k *configKey) decodeMappingList(raw any) (reflect.Value, []centre.FieldError) {
	items, ok := raw.([]any)
	if !ok {
		return decodeStrict(k.name, raw, k.typ) // not a list: the error says so
	}
	known := configStructKeys(k.typ.Elem())
	out := reflect.MakeSlice(k.typ, len(items), len(items))
	var problems []centre.FieldError
	for i, item := range items {
		field := fmt.Sprintf("%s[%d]", k.name, i)
		m, ok := item.(map[string]any)
		if !ok {
			_, errs := decodeStrict(field, item, k.typ.Elem())
			problems = append(problems, errs...)
			continue
		}
		entry := make(map[string]any, len(m))
		var unknown []string
		for key, v := range m {
			if slices.Contains(known, key) {
				entry[key] = v
			} else {
				unknown = append(unknown, key)
			}
		}
		v, errs := decodeStrict(field, entry, k.typ.Elem())
		problems = append(problems, errs...)
		for _, key := range slices.Sorted(slices.Values(unknown)) {
			problems = append(problems, centre.FieldError{Field: field + "." + key, Problem: "unknown key"})
		}
		if errs == nil {
			out.Index(i).Set(v)
		}
	}
	if problems != nil {
		return reflect.Value{}, problems
	}
	return out, nil
}

// decodeFile decodes the file's settings under section into values,
// appending a problem for every unknown key and every value of the wrong
// type. Known keys come in declaration order, then unknown ones sorted, so
// the report is stable.
func (s *configSchema) decodeFile(m map[string]any, section, dir string, values map[string]reflect.Value, problems centre.ConfigErrors) centre.ConfigErrors {
	known := s.children[section]
	for _, child := range known {
		raw, ok := m[child]
		if !ok || raw == nil {
			continue
		}
		name := child
		if section != "" {
			name = section + "." + child
		}
		k := s.leaf[name]
		if k == nil { // a section
			sub, ok := raw.(map[string]any)
			if !ok {
				problems = append(problems, centre.FieldError{Field: name, Problem: "expected a mapping, got " + configKind(reflect.ValueOf(raw))})
				continue
			}
			problems = s.decodeFile(sub, name, dir, values, problems)
			continue
		}
		var v reflect.Value
		var errs []centre.FieldError
		if k.fileOnly {
			v, errs = k.decodeMappingList(raw)
		} else {
			v, errs = decodeStrict(name, raw, k.typ)
		}
		problems = append(problems, errs...)
		if errs != nil {
			continue
		}
		var err error
		if values[name], err = k.resolvePaths(v, dir); err != nil {
			problems = append(problems, centre.FieldError{Field: name, Problem: err.Error()})
		}
	}
	for _, child := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(known, child) {
			name := child
			if section != "" {
				name = section + "." + child
			}
			problems = append(problems, centre.FieldError{Field: name, Problem: "unknown key"})
		}
	}
	return problems
}

// sort orders problems as the fields are declared in centre.Config, unknown
// keys after the known ones of their section. The sort is stable: the
// problems of one key stay in the order they were found.
func (s *configSchema) sort(problems centre.ConfigErrors) {
	rank := func(field string) []int {
		var r []int
		section := ""
		for _, seg := range strings.Split(configBaseKey(field), ".") {
			i := slices.Index(s.children[section], seg)
			if i < 0 {
				return append(r, len(s.children[section]))
			}
			r = append(r, i)
			if section != "" {
				seg = section + "." + seg
			}
			section = seg
		}
		return r
	}
	slices.SortStableFunc(problems, func(a, b centre.FieldError) int {
		return slices.Compare(rank(a.Field), rank(b.Field))
	})
}

// resolvePaths makes the path, or paths, in v absolute if k holds paths:
// against dir, or against the working directory when dir is "".
func (k *configKey) resolvePaths(v reflect.Value, dir string) (reflect.Value, error) {
	if !k.path {
		return v, nil
	}
	abs := func(p string) (string, error) {
		switch {
		case p == "" || filepath.IsAbs(p):
			return p, nil
		case dir != "":
			return filepath.Join(dir, p), nil
		default:
			return filepath.Abs(p)
		}
	}
	switch v.Kind() {
	case reflect.String:
		p, err := abs(v.String())
		return reflect.ValueOf(p).Convert(v.Type()), err
	case reflect.Slice:
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			p, err := abs(v.Index(i).String())
			if err != nil {
				return v, err
			}
			out.Index(i).SetString(p)
		}
		return out, nil
	}
	panic(fmt.Sprintf("config key %s: config:\"path\" on a %s", k.name, v.Type()))
}

// decodeStrict decodes raw, a value from YAML or a flag, into a value of type
// t, refusing every conversion strictDecodeHook refuses. Each problem names
// key, or key[i] for an item of a list.
func decodeStrict(key string, raw any, t reflect.Type) (reflect.Value, []centre.FieldError) {
	out := reflect.New(t)
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           out.Interface(),
		DecodeHook:       strictDecodeHook,
		WeaklyTypedInput: false,
	})
	if err != nil {
		panic(err) // only for a Result that is not a pointer
	}
	err = dec.Decode(raw)
	if err == nil {
		return out.Elem(), nil
	}
	var problems []centre.FieldError
	var walk func(error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		if de, ok := err.(*mapstructure.DecodeError); ok {
			problems = append(problems, centre.FieldError{Field: configField(key, de.Name()), Problem: de.Unwrap().Error()})
			return
		}
		if inner := errors.Unwrap(err); inner != nil { // "decoding failed due to the following error(s)"
			walk(inner)
			return
		}
		problems = append(problems, centre.FieldError{Field: key, Problem: err.Error()})
	}
	walk(err)
	return reflect.Value{}, problems
}

// strictDecodeHook runs before mapstructure decodes each value and lets
// through only a value that already has the target's kind: mapstructure on
// its own, even with WeaklyTypedInput off, would turn 1.9 into the integer 1
// and 3 into a 3ns time.Duration. A duration must be a string such as "1s".
func strictDecodeHook(from, to reflect.Value) (any, error) {
	data := from.Interface()
	want := to.Type()
	if from.Type() == want {
		return data, nil
	}
	fk := from.Kind()
	ok := false
	switch wk := want.Kind(); {
	case want == configDurationType:
		if fk == reflect.String {
			d, err := time.ParseDuration(from.String())
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration such as \"1s\" or \"250ms\"", from.String())
			}
			return d, nil
		}
	case wk == reflect.String, wk == reflect.Bool:
		ok = fk == wk
	case kindIsInt(wk):
		switch {
		case kindIsInt(fk):
			ok = true
			if to.OverflowInt(from.Int()) {
				return nil, fmt.Errorf("%d is out of range", from.Int())
			}
		case kindIsUint(fk):
			ok = true
			if from.Uint() > math.MaxInt64 || to.OverflowInt(int64(from.Uint())) {
				return nil, fmt.Errorf("%d is out of range", from.Uint())
			}
		}
	case kindIsUint(wk):
		switch {
		case kindIsInt(fk):
			ok = true
			if from.Int() < 0 || to.OverflowUint(uint64(from.Int())) {
				return nil, fmt.Errorf("%d is out of range", from.Int())
			}
		case kindIsUint(fk):
			ok = true
			if to.OverflowUint(from.Uint()) {
				return nil, fmt.Errorf("%d is out of range", from.Uint())
			}
		}
	case wk == reflect.Float32, wk == reflect.Float64:
		ok = kindIsInt(fk) || kindIsUint(fk) || fk == reflect.Float32 || fk == reflect.Float64
	case wk == reflect.Slice, wk == reflect.Array:
		ok = fk == reflect.Slice || fk == reflect.Array
	case wk == reflect.Struct, wk == reflect.Map:
		ok = fk == reflect.Map
	default:
		ok = true
	}
	if !ok {
		return nil, fmt.Errorf("expected %s, got %s", configWant(want), configKind(from))
	}
	return data, nil
}

func kindIsInt(k reflect.Kind) bool { return k >= reflect.Int && k <= reflect.Int64 }

func kindIsUint(k reflect.Kind) bool { return k >= reflect.Uint && k <= reflect.Uintptr }

// configWant names what a value of type t is written as.
func configWant(t reflect.Type) string {
	switch k := t.Kind(); {
	case t == configDurationType:
		return `a duration such as "1s"`
	case k == reflect.String:
		return "a string"
	case k == reflect.Bool:
		return "true or false"
	case kindIsInt(k):
		return "an integer"
	case kindIsUint(k):
		return "a non-negative integer"
	case k == reflect.Float32, k == reflect.Float64:
		return "a number"
	case k == reflect.Slice, k == reflect.Array:
		return "a list"
	case k == reflect.Struct, k == reflect.Map:
		return "a mapping"
	}
	return t.String()
}

// configKind names the kind of value v as YAML would.
func configKind(v reflect.Value) string {
	switch k := v.Kind(); {
	case !v.IsValid():
		return "null"
	case k == reflect.String:
		return "string"
	case k == reflect.Bool:
		return "bool"
	case kindIsInt(k), kindIsUint(k):
		return "integer"
	case k == reflect.Float32, k == reflect.Float64:
		return "float"
	case k == reflect.Slice, k == reflect.Array:
		return "list"
	case k == reflect.Map:
		return "mapping"
	}
	return v.Type().String()
}

// parseEnvValue parses s, from an environment variable, as a value of type t.
// A list is comma-separated; spaces around items and empty items are dropped.
func parseEnvValue(s string, t reflect.Type) (reflect.Value, error) {
	if t.Kind() != reflect.Slice {
		return parseEnvScalar(s, t)
	}
	out := reflect.MakeSlice(t, 0, strings.Count(s, ",")+1)
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		v, err := parseEnvScalar(item, t.Elem())
		if err != nil {
			return reflect.Value{}, fmt.Errorf("item %d: %w", i+1, err)
		}
		out = reflect.Append(out, v)
	}
	return out, nil
}

func parseEnvScalar(s string, t reflect.Type) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	rangeOr := func(err error, what string) error {
		if errors.Is(err, strconv.ErrRange) {
			return errors.New("out of range")
		}
		return errors.New("not " + what)
	}
	switch k := t.Kind(); {
	case t == configDurationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return v, errors.New(`not a duration such as "1s"`)
		}
		v.SetInt(int64(d))
	case k == reflect.String:
		v.SetString(s)
	case k == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return v, errors.New("not true or false")
		}
		v.SetBool(b)
	case kindIsInt(k):
		n, err := strconv.ParseInt(s, 10, t.Bits())
		if err != nil {
			return v, rangeOr(err, "an integer")
		}
		v.SetInt(n)
	case kindIsUint(k):
		n, err := strconv.ParseUint(s, 10, t.Bits())
		if err != nil {
			return v, rangeOr(err, "a non-negative integer")
		}
		v.SetUint(n)
	case k == reflect.Float32, k == reflect.Float64:
		f, err := strconv.ParseFloat(s, t.Bits())
		if err != nil {
			return v, rangeOr(err, "a number")
		}
		v.SetFloat(f)
	default:
		return v, fmt.Errorf("cannot be set from the environment (type %s)", t)
	}
	return v, nil
}

// configField joins key and the name mapstructure gives a part of its value:
// "[1]" for an item of a list, "pattern" for a key of a mapping.
func configField(key, name string) string {
	if name == "" || strings.HasPrefix(name, "[") {
		return key + name
	}
	return key + "." + name
}

// configBaseKey is the key a field name belongs to: "p2p.listen" for
// "p2p.listen[1]".
func configBaseKey(field string) string {
	base, _, _ := strings.Cut(field, "[")
	return base
}
