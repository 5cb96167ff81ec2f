package filter

import (
	"errors"
	"maps"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// Operator names.
const (
	opEq    = "$eq"
	opNeq   = "$neq"
	opGt    = "$gt"
	opGte   = "$gte"
	opLt    = "$lt"
	opLte   = "$lte"
	opIn    = "$in"
	opNin   = "$nin"
	opExist = "$exist"
	opRegex = "$regex"
	opOr    = "$or"
	opAnd   = "$and"

	operatorList = "$eq $neq $gt $gte $lt $lte $in $nin $exist $regex $or $and"
)

// valueOperators are the operators that test a field's value.
var valueOperators = map[string]bool{
	opEq: true, opNeq: true, opGt: true, opGte: true, opLt: true, opLte: true,
	opIn: true, opNin: true, opExist: true, opRegex: true,
}

// orderTests are the tests of the ordering operators.
var orderTests = map[string]test{opGt: testGt, opGte: testGte, opLt: testLt, opLte: testLte}

// misspellings maps MongoDB's names, which users type out of habit, to ours.
var misspellings = map[string]string{
	"$ne":     opNeq,
	"$exists": opExist,
}

// Compile validates the filter document doc and compiles it for matching.
// doc is as encoding/json or structpb's AsMap give it (map[string]any,
// []any, string, float64, bool, nil), with json.Number and Go's integer
// types accepted too. An empty or nil document matches everything. A
// document that is not valid gives an *Error naming the offending element,
// as in `amount.$gte: operand must be a number or a string, got array`. See
// the package documentation for the language.
func Compile(doc map[string]any, opts Options) (*Filter, error) {
	c := &compiler{opts: opts.withDefaults()}
	root, err := c.document(doc, nil, "", 1)
	if err != nil {
		return nil, err
	}
	return &Filter{root: root}, nil
}

// compiler holds the state of one Compile.
type compiler struct {
	opts  Options
	nodes int
}

// enter accounts for an object or array at path and depth.
func (c *compiler) enter(path string, depth int) error {
	if depth > c.opts.MaxDepth {
		return errorf(path, "nested deeper than the limit of %d levels", c.opts.MaxDepth)
	}
	return c.count(path)
}

// count accounts for one node of the document, at path.
func (c *compiler) count(path string) error {
	c.nodes++
	if c.nodes > c.opts.MaxNodes {
		return errorf(path, "filter has more than the limit of %d nodes (objects, arrays and values)", c.opts.MaxNodes)
	}
	return nil
}

// document compiles the filter document m at path, whose field paths
// continue prefix (the path of the field it is the value of, if any).
func (c *compiler) document(m map[string]any, prefix []string, path string, depth int) (node, error) {
	if err := c.enter(path, depth); err != nil {
		return node{}, err
	}
	// Sorted, so that of several problems the same one is reported every time.
	keys := slices.Sorted(maps.Keys(m))
	if err := checkOperatorPlace(keys, prefix, path); err != nil {
		return node{}, err
	}
	kids := make([]node, 0, len(keys))
	for _, k := range keys {
		n, err := c.member(k, m[k], prefix, joinKey(path, k), depth)
		if err != nil {
			return node{}, err
		}
		kids = append(kids, n)
	}
	return and(kids), nil
}

// checkOperatorPlace checks that the document at path with the sorted keys
// holds value operators only where they can apply: not beside fields, and
// only as the value of a field (prefix).
func checkOperatorPlace(keys, prefix []string, path string) error {
	op, field := firstOperatorAndField(keys)
	if op != "" && field != "" {
		return errorf(path, "object mixes the operator %s with the field %q: an object holds either operators, which test the field it is the value of, or fields of a nested document", op, field)
	}
	if op != "" && len(prefix) == 0 {
		return errorf(joinKey(path, op), "operator %s must apply to a field, as in {\"status\": {\"%s\": ...}}; only $or and $and may stand outside a field", op, op)
	}
	return nil
}

// firstOperatorAndField returns the first value operator and the first
// field name among keys; either is empty when there is none.
func firstOperatorAndField(keys []string) (op, field string) {
	for _, k := range keys {
		switch {
		case valueOperators[k]:
			if op == "" {
				op = k
			}
		case !strings.HasPrefix(k, "$"):
			if field == "" {
				field = k
			}
		}
	}
	return op, field
}

// member compiles the key k with value v, at path, of a document at depth
// whose field paths continue prefix.
func (c *compiler) member(k string, v any, prefix []string, path string, depth int) (node, error) {
	switch {
	case k == opOr || k == opAnd:
		return c.logical(k, v, prefix, path, depth)
	case valueOperators[k]:
		return c.valueOperator(k, v, prefix, path, depth)
	case strings.HasPrefix(k, "$"):
		return node{}, unknownOperator(k, path)
	}
	return c.field(k, v, prefix, path, depth)
}

// unknownOperator is the error for the key k at path that looks like an
// operator but is none, suggesting ours for MongoDB's names.
func unknownOperator(k, path string) error {
	msg := "unknown operator " + strconv.Quote(k) + " (want " + operatorList + ")"
	if want, ok := misspellings[k]; ok {
		msg += "; did you mean " + want + "?"
	}
	return &Error{Path: path, Msg: msg}
}

// field compiles the condition {key: v} at path, in a document at depth
// whose field paths continue prefix.
func (c *compiler) field(key string, v any, prefix []string, path string, depth int) (node, error) {
	if key == "" {
		return node{}, errorf(path, "empty field name")
	}
	segs := strings.Split(key, ".")
	if slices.Contains(segs, "") {
		return node{}, errorf(path, "field path %q has an empty segment", key)
	}
	// v sits where it would in the nested form {"a": {"b": {"c": v}}}.
	vdepth := depth + len(segs)
	if vdepth-1 > c.opts.MaxDepth {
		return node{}, errorf(path, "field path nests deeper than the limit of %d levels", c.opts.MaxDepth)
	}
	full := make([]string, 0, len(prefix)+len(segs))
	full = append(append(full, prefix...), segs...)
	if m, ok := v.(map[string]any); ok && len(m) > 0 {
		return c.document(m, full, path, vdepth)
	}
	operand, err := c.operand(v, path, vdepth)
	if err != nil {
		return node{}, err
	}
	l := newLeaf(full, testEq)
	l.val = operand
	return leafNode(l), nil
}

// logical compiles $or or $and (name) with operand v at path, in a document
// at depth whose field paths continue prefix.
func (c *compiler) logical(name string, v any, prefix []string, path string, depth int) (node, error) {
	arr, ok := v.([]any)
	if !ok {
		return node{}, errorf(path, "operand must be a non-empty array of filter documents, got %s", kindOf(v))
	}
	if err := c.enter(path, depth+1); err != nil {
		return node{}, err
	}
	if len(arr) == 0 {
		return node{}, errorf(path, "operand must be a non-empty array of filter documents, got an empty array")
	}
	kids := make([]node, 0, len(arr))
	for i, e := range arr {
		epath := joinIndex(path, i)
		m, ok := e.(map[string]any)
		if !ok {
			return node{}, errorf(epath, "must be a filter document (an object), got %s", kindOf(e))
		}
		n, err := c.document(m, prefix, epath, depth+2)
		if err != nil {
			return node{}, err
		}
		kids = append(kids, n)
	}
	if name == opOr {
		return or(kids), nil
	}
	return and(kids), nil
}

// valueOperator compiles the operator name with operand v at path, testing
// the field prefix; the operator's object is at depth.
func (c *compiler) valueOperator(name string, v any, prefix []string, path string, depth int) (node, error) {
	var (
		l   *leaf
		err error
	)
	switch name {
	case opEq, opNeq:
		l, err = c.eqOperator(name, v, prefix, path, depth)
	case opGt, opGte, opLt, opLte:
		l, err = c.orderOperator(name, v, prefix, path)
	case opIn, opNin:
		l, err = c.inOperator(name, v, prefix, path, depth)
	case opExist:
		l, err = c.existOperator(v, prefix, path)
	case opRegex:
		l, err = c.regexOperator(v, prefix, path)
	}
	if err != nil {
		return node{}, err
	}
	return leafNode(l), nil
}

// eqOperator compiles $eq or $neq (name) with operand v at path.
func (c *compiler) eqOperator(name string, v any, prefix []string, path string, depth int) (*leaf, error) {
	operand, err := c.operand(v, path, depth+1)
	if err != nil {
		return nil, err
	}
	l := newLeaf(prefix, testEq)
	l.val = operand
	l.neg = name == opNeq
	return l, nil
}

// orderOperator compiles $gt, $gte, $lt or $lte (name) with operand v at
// path.
func (c *compiler) orderOperator(name string, v any, prefix []string, path string) (*leaf, error) {
	if err := c.count(path); err != nil {
		return nil, err
	}
	operand, err := orderOperand(v, path)
	if err != nil {
		return nil, err
	}
	l := newLeaf(prefix, orderTests[name])
	l.val = operand
	return l, nil
}

// orderOperand normalises the operand v of an ordering operator at path:
// a number becomes a decimal, a string stays; anything else is an error.
func orderOperand(v any, path string) (any, error) {
	switch {
	case isNumber(v):
		d, err := number(v, path)
		if err != nil {
			return nil, err
		}
		return d, nil
	case isString(v):
		return v, nil
	}
	return nil, errorf(path, "operand must be a number or a string, got %s", kindOf(v))
}

// inOperator compiles $in or $nin (name) with operand v at path.
func (c *compiler) inOperator(name string, v any, prefix []string, path string, depth int) (*leaf, error) {
	if _, ok := v.([]any); !ok {
		return nil, errorf(path, "operand must be an array, got %s", kindOf(v))
	}
	operand, err := c.operand(v, path, depth+1)
	if err != nil {
		return nil, err
	}
	l := newLeaf(prefix, testIn)
	l.setList(operand.([]any))
	l.neg = name == opNin
	return l, nil
}

// existOperator compiles $exist with operand v at path.
func (c *compiler) existOperator(v any, prefix []string, path string) (*leaf, error) {
	if err := c.count(path); err != nil {
		return nil, err
	}
	b, ok := v.(bool)
	if !ok {
		return nil, errorf(path, "operand must be a boolean, got %s", kindOf(v))
	}
	l := newLeaf(prefix, testAny)
	l.neg = !b
	return l, nil
}

// regexOperator compiles $regex with operand v at path.
func (c *compiler) regexOperator(v any, prefix []string, path string) (*leaf, error) {
	if err := c.count(path); err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, errorf(path, "operand must be a string, got %s", kindOf(v))
	}
	if len(s) > c.opts.MaxRegexLen {
		return nil, errorf(path, "regular expression is %d bytes long, over the limit of %d", len(s), c.opts.MaxRegexLen)
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, errorf(path, "invalid regular expression: %s", regexpProblem(err))
	}
	l := newLeaf(prefix, testRegex)
	l.re = re
	return l, nil
}

// regexpProblem says what is wrong with a regular expression without
// regexp's "error parsing regexp:" preamble.
func regexpProblem(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return string(se.Code) + ": `" + se.Expr + "`"
	}
	return err.Error()
}

// operand normalises the value v at path and depth: numbers become
// decimals, and objects and arrays are copied with their members
// normalised.
func (c *compiler) operand(v any, path string, depth int) (any, error) {
	switch x := v.(type) {
	case nil, bool, string:
		return x, c.count(path)
	case []any:
		if err := c.enter(path, depth); err != nil {
			return nil, err
		}
		out := make([]any, len(x))
		for i, e := range x {
			n, err := c.operand(e, joinIndex(path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		if err := c.enter(path, depth); err != nil {
			return nil, err
		}
		out := make(map[string]any, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			n, err := c.operand(x[k], joinKey(path, k), depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	}
	if err := c.count(path); err != nil {
		return nil, err
	}
	return number(v, path)
}

// number reads the operand v at path as a decimal.
func number(v any, path string) (decimal, error) {
	d, ok := toDecimal(v)
	switch {
	case ok:
		return d, nil
	case !isNumber(v):
		return decimal{}, errorf(path, "unsupported value of type %T", v)
	case isFloat(v):
		return decimal{}, errorf(path, "number must be finite, got %v", v)
	}
	return decimal{}, errorf(path, "invalid number %q", v)
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

func isFloat(v any) bool {
	switch v.(type) {
	case float32, float64:
		return true
	}
	return false
}
