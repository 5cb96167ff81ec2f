package filter

import (
	"regexp"
	"strconv"
)

// Filter is a compiled filter document. It is immutable and safe for
// concurrent use. A nil *Filter matches everything.
type Filter struct {
	root node
}

// Match reports whether the filter matches the payload v, a decoded JSON
// value (see DecodeJSON; float64 numbers are accepted too).
func (f *Filter) Match(v any) bool {
	if f == nil {
		return true
	}
	return f.root.eval(&target{body: v})
}

// MatchHeaders reports whether the filter matches the headers h, with the
// first segment of each field path compared with header names
// case-insensitively. See the package documentation.
func (f *Filter) MatchHeaders(h map[string]string) bool {
	if f == nil {
		return true
	}
	return f.root.eval(&target{headers: h, isHeaders: true})
}

// IsEmpty reports whether the filter has no conditions and so matches
// everything, as the empty document does (and {"$and": [{}]}).
func (f *Filter) IsEmpty() bool {
	return f == nil || f.root.kind == kindTrue
}

// target is what a filter is matched against: a payload or headers.
type target struct {
	body      any
	headers   map[string]string
	isHeaders bool
}

type nodeKind uint8

const (
	kindTrue nodeKind = iota
	kindAnd
	kindOr
	kindLeaf
)

// node is a compiled document: a conjunction or disjunction of nodes, or
// one condition on one path.
type node struct {
	kind nodeKind
	kids []node
	leaf *leaf
}

func leafNode(l *leaf) node { return node{kind: kindLeaf, leaf: l} }

// and is the conjunction of kids, flattened, without the ones always true.
func and(kids []node) node {
	var out []node
	for _, k := range kids {
		switch k.kind {
		case kindTrue:
		case kindAnd:
			out = append(out, k.kids...)
		default:
			out = append(out, k)
		}
	}
	switch len(out) {
	case 0:
		return node{kind: kindTrue}
	case 1:
		return out[0]
	}
	return node{kind: kindAnd, kids: out}
}

// or is the disjunction of kids, flattened; true when one of them is.
func or(kids []node) node {
	var out []node
	for _, k := range kids {
		switch k.kind {
		case kindTrue:
			return k
		case kindOr:
			out = append(out, k.kids...)
		default:
			out = append(out, k)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return node{kind: kindOr, kids: out}
}

func (n *node) eval(t *target) bool {
	switch n.kind {
	case kindAnd:
		for i := range n.kids {
			if !n.kids[i].eval(t) {
				return false
			}
		}
		return true
	case kindOr:
		for i := range n.kids {
			if n.kids[i].eval(t) {
				return true
			}
		}
		return false
	case kindLeaf:
		return n.leaf.eval(t)
	}
	return true
}

// test is what a leaf asks of each value its path reaches.
type test uint8

const (
	testAny test = iota // present: $exist
	testEq
	testIn
	testGt
	testGte
	testLt
	testLte
	testRegex
)

// leaf is one condition: a test of the values that one path reaches.
type leaf struct {
	path  []string
	index []int // index[i] is path[i] read as an array index, or -1
	test  test
	neg   bool // the condition holds when no value passes: $neq, $nin, $exist false
	val   any  // operand of $eq, $neq and the orderings
	list  []any
	strs  map[string]struct{} // string members of a long $in list, then not in list
	re    *regexp.Regexp
}

// longList is the length from which a $in list's strings go in a map.
const longList = 8

func newLeaf(path []string, t test) *leaf {
	l := &leaf{path: path, index: make([]int, len(path)), test: t}
	for i, seg := range path {
		l.index[i] = arrayIndex(seg)
	}
	return l
}

// arrayIndex reads seg as an array index: a non-negative integer in
// canonical form ("0", "12", not "012" or "+1"), or -1.
func arrayIndex(seg string) int {
	if seg == "" || len(seg) > 9 || (seg[0] == '0' && len(seg) > 1) {
		return -1
	}
	n, err := strconv.Atoi(seg)
	if err != nil || n < 0 || seg[0] == '+' {
		return -1
	}
	return n
}

// setList sets the operand of $in or $nin.
func (l *leaf) setList(list []any) {
	strs := 0
	for _, v := range list {
		if _, ok := v.(string); ok {
			strs++
		}
	}
	if strs < longList {
		l.list = list
		return
	}
	l.strs = make(map[string]struct{}, strs)
	for _, v := range list {
		if s, ok := v.(string); ok {
			l.strs[s] = struct{}{}
		} else {
			l.list = append(l.list, v)
		}
	}
}

func (l *leaf) eval(t *target) bool {
	var found bool
	if t.isHeaders {
		found = l.header(t.headers)
	} else {
		found = l.walk(t.body, 0)
	}
	return found != l.neg
}

// walk reports whether a value that path[i:] reaches from v passes the test.
func (l *leaf) walk(v any, i int) bool {
	if i == len(l.path) {
		return l.passEnd(v)
	}
	switch x := v.(type) {
	case map[string]any:
		c, ok := x[l.path[i]]
		return ok && l.walk(c, i+1)
	case []any:
		return l.walkArray(x, i)
	}
	return false
}

// passEnd reports whether v, the value at the end of the path, passes the
// test, or, for any test but presence ($exists), one of v's elements when
// v is an array.
func (l *leaf) passEnd(v any) bool {
	if l.pass(v) {
		return true
	}
	if a, ok := v.([]any); ok && l.test != testAny {
		for _, e := range a {
			if l.pass(e) {
				return true
			}
		}
	}
	return false
}

// walkArray reports whether a value that path[i:] reaches from an element
// of x passes the test: path[i] names a field of the element objects, or
// else an index of x.
func (l *leaf) walkArray(x []any, i int) bool {
	for _, e := range x {
		if m, ok := e.(map[string]any); ok {
			if c, ok := m[l.path[i]]; ok && l.walk(c, i+1) {
				return true
			}
		}
	}
	if j := l.index[i]; j >= 0 && j < len(x) {
		return l.walk(x[j], i+1)
	}
	return false
}

// header reports whether a header whose name is path[0] passes the test.
func (l *leaf) header(h map[string]string) bool {
	if len(l.path) != 1 {
		return false // header values are strings, which have no fields
	}
	for name, v := range h {
		if equalFoldASCII(name, l.path[0]) && l.pass(v) {
			return true
		}
	}
	return false
}

// pass applies the leaf's test to one value.
func (l *leaf) pass(v any) bool {
	switch l.test {
	case testAny:
		return true
	case testEq:
		return equal(l.val, v)
	case testIn:
		return l.in(v)
	case testRegex:
		s, ok := v.(string)
		return ok && l.re.MatchString(s)
	}
	c, ok := order(v, l.val)
	if !ok {
		return false
	}
	switch l.test {
	case testGt:
		return c > 0
	case testGte:
		return c >= 0
	case testLt:
		return c < 0
	default:
		return c <= 0
	}
}

// in reports whether v equals a member of the $in list.
func (l *leaf) in(v any) bool {
	if s, ok := v.(string); ok && l.strs != nil {
		_, ok := l.strs[s]
		return ok
	}
	for _, m := range l.list {
		if equal(m, v) {
			return true
		}
	}
	return false
}

// equalFoldASCII reports whether a and b are equal ignoring ASCII case, as
// HTTP header names are compared.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
