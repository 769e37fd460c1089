package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// report is the phone-home body of docs/PROTOCOL.md.
type report struct {
	State       string    `json:"state"`
	Detail      string    `json:"detail,omitempty"`
	ImageDigest string    `json:"image_digest,omitempty"`
	RootMount   string    `json:"root_mount,omitempty"`
	Hostname    string    `json:"hostname,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Timeline    *timeline `json:"timeline,omitempty"`
}

func runPhoneHome(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("phonehome", flag.ContinueOnError)
	server := fs.String("server", "", "boot service base URL (imgctl.url)")
	node := fs.String("node", "", "node name (imgctl.node)")
	token := fs.String("token", "", "node token (imgctl.token)")
	var r report
	fs.StringVar(&r.State, "state", "", "rootfs, booted or failed")
	fs.StringVar(&r.Detail, "detail", "", "free text")
	fs.StringVar(&r.Reason, "reason", "", "why the boot failed")
	fs.StringVar(&r.ImageDigest, "digest", "", "image digest the node runs")
	withTimeline := fs.Bool("timeline", false, "add systemd's boot timeline (userspace time, slowest units); with --state booted")
	mounts := fs.String("mounts", "/proc/mounts", "mount table to read the root mount from")
	manifestURL := fs.String("manifest", "", "artifact manifest URL to read the image digest from when --digest is empty")
	if err := fs.Parse(args); err != nil {
		return usageErr(err.Error())
	}
	if *server == "" || *node == "" || r.State == "" {
		return usageErr("phonehome needs --server, --node and --state")
	}
	if r.ImageDigest == "" && *manifestURL != "" {
		// The kernel command line names the manifest, not the digest; a
		// report without a digest is still worth sending.
		if m, err := getManifest(ctx, *manifestURL, 2); err == nil {
			r.ImageDigest = m.ImageDigest
		} else {
			fmt.Fprintln(os.Stderr, "imgctl-agent: no image digest:", err)
		}
	}
	if *withTimeline {
		// A report without a timeline is still worth sending.
		if t, err := collectTimeline(ctx); err == nil {
			r.Timeline = t
		} else {
			fmt.Fprintln(os.Stderr, "imgctl-agent: no boot timeline:", err)
		}
	}
	r.Hostname, _ = os.Hostname()
	r.RootMount = rootMount(*mounts)
	body, _ := json.Marshal(r)
	u := strings.TrimRight(*server, "/") + "/api/v1/nodes/" + url.PathEscape(*node) + "/state?token=" + url.QueryEscape(*token)
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			sleep(ctx, time.Duration(attempt)*time.Second)
		}
		lastErr = post(ctx, u, body)
		if lastErr == nil {
			return nil
		}
	}
	return fmt.Errorf("phone home %s: %w", *server, lastErr)
}

func post(ctx context.Context, u string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST: %s", resp.Status)
	}
	return nil
}

// rootMount returns the /proc/mounts line of "/" (the last one wins: an
// overlay mounted over the initial root).
func rootMount(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	// mountAt returns the last (topmost) mount on dir.
	mountAt := func(dir string) string {
		var line string
		for _, l := range lines {
			if f := strings.Fields(l); len(f) >= 2 && f[1] == dir {
				line = l
			}
		}
		return line
	}
	root := mountAt("/")
	// An overlay root says little by itself: name what lies beneath it (the
	// squashfs or the NFS export), which is what operators want to know.
	if f := strings.Fields(root); len(f) >= 4 && f[2] == "overlay" {
		for _, opt := range strings.Split(f[3], ",") {
			if lower, ok := strings.CutPrefix(opt, "lowerdir="); ok {
				lower, _, _ = strings.Cut(lower, ":")
				if l := mountAt(lower); l != "" {
					root += " | lower: " + l
				}
			}
		}
	}
	return root
}
