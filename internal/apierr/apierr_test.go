package apierr

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"
)

// TestInternalErrorsDoNotLeak checks that an unexpected error reaches the
// client as a plain Internal with an id, and the log line with the same id
// has the detail.
func TestInternalErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	mux := http.NewServeMux()
	mux.Handle("/test.v1.T/Fail", connect.NewUnaryHandler("/test.v1.T/Fail",
		func(context.Context, *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
			return nil, errors.New("dial tcp 10.1.2.3:27017: password=hunter2 refused")
		}, connect.WithInterceptors(NewInterceptor(logger))))
	mux.Handle("/test.v1.T/Invalid", connect.NewUnaryHandler("/test.v1.T/Invalid",
		func(context.Context, *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
			return nil, Invalid("name", "must not be empty")
		}, connect.WithInterceptors(NewInterceptor(logger))))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	_, err := connect.NewClient[emptypb.Empty, emptypb.Empty](srv.Client(), srv.URL+"/test.v1.T/Fail").CallUnary(context.Background(), connect.NewRequest(&emptypb.Empty{}))
	if connect.CodeOf(err) != connect.CodeInternal || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "10.1.2.3") {
		t.Fatalf("client saw %v", err)
	}
	id := regexp.MustCompile(`error id ([0-9a-z]+)`).FindStringSubmatch(err.Error())
	if id == nil {
		t.Fatalf("no error id in %v", err)
	}
	if !strings.Contains(logs.String(), `"error_id":"`+id[1]+`"`) || !strings.Contains(logs.String(), "hunter2") {
		t.Fatalf("log lacks the id %s or the detail: %s", id[1], logs.String())
	}
	_, err = connect.NewClient[emptypb.Empty, emptypb.Empty](srv.Client(), srv.URL+"/test.v1.T/Invalid").CallUnary(context.Background(), connect.NewRequest(&emptypb.Empty{}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "name: must not be empty") {
		t.Fatalf("a user error was changed: %v", err)
	}
}
