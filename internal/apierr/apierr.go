// Package apierr builds the errors the APIs return. Every error a client sees
// says what was wrong and, where it helps, what to do; an unexpected error is
// logged with its detail and returned as a plain Internal carrying an id that
// matches the log line.
package apierr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/hookmesh/hookmesh/internal/ids"
)

// Invalid reports a bad request field: InvalidArgument naming the field.
func Invalid(field, format string, args ...any) *connect.Error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

// NotFound reports a missing resource of a kind with an id.
func NotFound(kind, id, projectID string) *connect.Error {
	if projectID == "" {
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s %q not found", kind, id))
	}
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s %q not found in project %q", kind, id, projectID))
}

// Unauthenticated reports a missing or unknown API key.
func Unauthenticated(msg string) *connect.Error {
	return connect.NewError(connect.CodeUnauthenticated, errors.New(msg))
}

// PermissionDenied reports a key that may not make this call.
func PermissionDenied(msg string) *connect.Error {
	return connect.NewError(connect.CodePermissionDenied, errors.New(msg))
}

// FailedPrecondition reports a request that the resource's state refuses.
func FailedPrecondition(format string, args ...any) *connect.Error {
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(format, args...))
}

// Internal logs err with an error id and returns an Internal error that
// carries only that id.
func Internal(ctx context.Context, logger *slog.Logger, procedure string, err error) *connect.Error {
	id := ids.Random(8)
	logger.ErrorContext(ctx, "internal error", "procedure", procedure, "error_id", id, "err", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error (error id %s)", id))
}

// NewInterceptor returns an interceptor that hides the detail of every error
// that is not already a *connect.Error behind Internal.
func NewInterceptor(logger *slog.Logger) connect.Interceptor {
	return &interceptor{logger: logger}
}

type interceptor struct{ logger *slog.Logger }

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		if err != nil && !req.Spec().IsClient {
			var ce *connect.Error
			if !errors.As(err, &ce) {
				if errors.Is(err, context.Canceled) {
					return nil, connect.NewError(connect.CodeCanceled, err)
				}
				if errors.Is(err, context.DeadlineExceeded) {
					return nil, connect.NewError(connect.CodeDeadlineExceeded, err)
				}
				return nil, Internal(ctx, i.logger, req.Spec().Procedure, err)
			}
		}
		return resp, err
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
