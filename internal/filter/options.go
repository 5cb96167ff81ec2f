package filter

// Defaults for the Options fields left zero.
const (
	// DefaultMaxDepth is the default Options.MaxDepth.
	DefaultMaxDepth = 10
	// DefaultMaxNodes is the default Options.MaxNodes.
	DefaultMaxNodes = 1000
	// DefaultMaxRegexLen is the default Options.MaxRegexLen.
	DefaultMaxRegexLen = 1024
)

// Options bounds what Compile accepts, so that a filter stored by one tenant
// cannot make matching slow for everyone. A field that is zero or negative
// takes its default.
type Options struct {
	// MaxDepth is the deepest nesting of objects and arrays in a document:
	// the document is at depth 1, each object or array value one deeper
	// than its parent, and a dotted key as deep as its nested form.
	// Default DefaultMaxDepth.
	MaxDepth int
	// MaxNodes is the most values a document may hold, counting every
	// object, array and scalar in it, the document included. Default
	// DefaultMaxNodes.
	MaxNodes int
	// MaxRegexLen is the longest $regex pattern, in bytes. Default
	// DefaultMaxRegexLen.
	MaxRegexLen int
}

func (o Options) withDefaults() Options {
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxNodes <= 0 {
		o.MaxNodes = DefaultMaxNodes
	}
	if o.MaxRegexLen <= 0 {
		o.MaxRegexLen = DefaultMaxRegexLen
	}
	return o
}
