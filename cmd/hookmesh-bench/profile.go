package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// profileSpec is a CPU profile of hookmesh to record: seconds long,
// starting after a delay, fetched from url's /debug/pprof/profile into file.
type profileSpec struct {
	url     string
	file    string
	after   time.Duration
	seconds int
}

// start fetches the profile in the background; the channel gets nil once
// the file is written, or what went wrong.
func (p *profileSpec) start(ctx context.Context, logf func(string, ...any)) <-chan error {
	done := make(chan error, 1)
	go func() { done <- p.fetch(ctx, logf) }()
	return done
}

func (p *profileSpec) fetch(ctx context.Context, logf func(string, ...any)) error {
	if p.after > 0 {
		select {
		case <-time.After(p.after):
		case <-ctx.Done():
			return fmt.Errorf("profile: %w", ctx.Err())
		}
	}
	url := p.url + "/debug/pprof/profile?seconds=" + strconv.Itoa(p.seconds)
	logf("recording a %d s CPU profile of hookmesh into %s", p.seconds, p.file)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	hc := &http.Client{Timeout: time.Duration(p.seconds)*time.Second + time.Minute}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("profile: fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		hint := ""
		if resp.StatusCode == http.StatusNotFound {
			hint = " (hookmesh serves its profiler only with HOOKMESH_PPROF=true)"
		}
		return fmt.Errorf("profile: GET %s: %s%s: %s", url, resp.Status, hint, strings.TrimSpace(string(msg)))
	}
	if err := os.MkdirAll(filepath.Dir(p.file), 0o755); err != nil {
		return fmt.Errorf("profile: create directory: %w", err)
	}
	// Written aside and renamed, so that a cut-off download leaves no
	// half a profile under the name.
	tmp := p.file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p.file)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("profile: write %s: %w", p.file, err)
	}
	return nil
}
