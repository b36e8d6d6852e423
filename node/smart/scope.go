package smart

import (
	"slices"
	"strings"
)

// resources are the FHIR resource types the centre serves (the /fhir
// routes node/api wires), and the interactions each route needs: the
// resource types a scope may name, besides "*". A scope for another type
// would grant nothing, so registration refuses it, a typo above all.
var resources = []resourceType{
	{"Patient", opR | opS},
	{"DocumentReference", opC | opR | opS},
	{"Binary", opC | opR},
	{"List", opC},
	{"Consent", opC | opR | opS},
	{"AuditEvent", opR | opS},
	{"Organization", opR | opS},
	{"Endpoint", opR | opS},
	{"Observation", opS},
}

// resourceType is a FHIR resource type and the interactions the centre
// serves on it.
type resourceType struct {
	name string
	ops  ops
}

// ScopesSupported are the scopes the smart-configuration document lists:
// for each resource type the centre serves, the SMART v2 scope of the
// interactions it serves, then the v1 read and write scopes that cover
// them.
var ScopesSupported = func() []string {
	var v2, v1 []string
	for _, r := range resources {
		v2 = append(v2, "system/"+r.name+"."+r.ops.String())
		if r.ops&(opR|opS) != 0 {
			v1 = append(v1, "system/"+r.name+".read")
		}
		if r.ops&(opC|opU|opD) != 0 {
			v1 = append(v1, "system/"+r.name+".write")
		}
	}
	return append(v2, v1...)
}()

// ops is a set of FHIR interactions: create, read, update, delete, search.
type ops uint8

const (
	opC ops = 1 << iota
	opR
	opU
	opD
	opS
)

// interactions are the SMART v2 letters, in the order a scope lists them.
const interactions = "cruds"

func (o ops) String() string {
	var b strings.Builder
	for i := range len(interactions) {
		if o&(1<<i) != 0 {
			b.WriteByte(interactions[i])
		}
	}
	return b.String()
}

// scope is a parsed system scope.
type scope struct {
	resource string // a resource type, or "*"
	ops      ops
}

// maxScopes bounds the scopes of one registration or request.
const maxScopes = 64

// parseScope parses a SMART system scope: system/<type>.<cruds> (v2, the
// letters in that order, each at most once) or system/<type>.read,
// .write or .* (v1), where <type> is a resource type the centre serves
// or *. Its errors are of kind node.Invalid and quote no more than the
// scope's shape.
func parseScope(s string) (scope, error) {
	rest, ok := strings.CutPrefix(s, "system/")
	if !ok {
		return scope{}, invalid("scope %s: only system/ scopes are granted here: a backend service acts for no patient and no user", quote(s))
	}
	if strings.ContainsAny(rest, "?&=") {
		return scope{}, invalid("scope %s: scopes with query parameters are not supported", quote(s))
	}
	resource, perm, ok := strings.Cut(rest, ".")
	if !ok {
		return scope{}, invalid("scope %s: not system/<resource type>.<permissions>", quote(s))
	}
	if resource != "*" && !slices.ContainsFunc(resources, func(r resourceType) bool { return r.name == resource }) {
		return scope{}, invalid("scope %s: the centre serves no resource type %s", quote(s), quote(resource))
	}
	sc := scope{resource: resource}
	switch perm {
	case "read":
		sc.ops = opR | opS
	case "write":
		sc.ops = opC | opU | opD
	case "*":
		sc.ops = opC | opR | opU | opD | opS
	default:
		last := -1
		for i := range len(perm) {
			at := strings.IndexByte(interactions, perm[i])
			if at <= last {
				return scope{}, invalid("scope %s: permissions are read, write, * or letters of cruds in that order", quote(s))
			}
			last = at
			sc.ops |= 1 << at
		}
		if sc.ops == 0 {
			return scope{}, invalid("scope %s: no permission", quote(s))
		}
	}
	return sc, nil
}

// parseScopes parses scopes, each of which may hold several separated by
// spaces, and returns them without repeats, in their order.
func parseScopes(list []string) ([]string, []scope, error) {
	var (
		names  []string
		parsed []scope
	)
	for _, l := range list {
		for _, s := range strings.Fields(l) {
			if slices.Contains(names, s) {
				continue
			}
			if len(names) == maxScopes {
				return nil, nil, invalid("more than %d scopes", maxScopes)
			}
			sc, err := parseScope(s)
			if err != nil {
				return nil, nil, err
			}
			names = append(names, s)
			parsed = append(parsed, sc)
		}
	}
	return names, parsed, nil
}

// covers reports whether the registered scopes allow everything the
// requested one does: a request for "*" is covered by registered "*"
// scopes alone.
func covers(registered []scope, requested scope) bool {
	var allowed ops
	for _, r := range registered {
		if r.resource == "*" || r.resource == requested.resource {
			allowed |= r.ops
		}
	}
	return requested.ops&^allowed == 0
}

// Allows reports whether the grant's scopes allow interaction ('c', 'r',
// 'u', 'd' or 's') on resource, a FHIR resource type.
func (g Grant) Allows(resource string, interaction byte) bool {
	at := strings.IndexByte(interactions, interaction)
	if at < 0 || resource == "" || resource == "*" {
		return false
	}
	for _, s := range g.Scopes {
		sc, err := parseScope(s)
		if err == nil && (sc.resource == "*" || sc.resource == resource) && sc.ops&(1<<at) != 0 {
			return true
		}
	}
	return false
}
