package filter

import "fmt"

// Error is a problem with a filter document, found by [Compile]. Path says
// where: keys joined by dots and array indexes in brackets, as in
// "$or[1].status.$foo"; it is empty for a problem with the document as a
// whole.
type Error struct {
	Path string
	Msg  string
}

// Error returns Path + ": " + Msg, or Msg alone when Path is empty.
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// errorf returns an *Error at path.
func errorf(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// joinKey is the error path of key inside the object at path; the empty key
// is shown as "".
func joinKey(path, key string) string {
	if key == "" {
		key = `""`
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// joinIndex is the error path of element i of the array at path.
func joinIndex(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}
