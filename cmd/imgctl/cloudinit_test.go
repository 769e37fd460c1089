package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCloudInitCLI(t *testing.T) {
	state := t.TempDir()
	st := []string{"--state", state, "-q"}
	mustRun := func(args ...string) string {
		t.Helper()
		out, errOut, err := runCLI(t, append(st, args...)...)
		if err != nil {
			t.Fatalf("imgctl %v: %v\n%s", args, err, errOut)
		}
		return out
	}
	write := func(name, body string) string {
		p := filepath.Join(state, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mustRun("group", "add", "compute")
	mustRun("node", "add", "nid[001-003]", "--ip", "10.0.0.[1-3]", "--group", "compute")
	tutorial := write("compute.json", `{"name": "compute", "cloud-init": {"userdata": {"runcmd": ["echo hi"]}, "metadata": {"role": "worker"}, "vendordata": {}}}`)
	mustRun("cloud-init", "set", "-f", tutorial)
	mustRun("cloud-init", "set", "nid[001-002]", "-f", write("nodes-ci.yaml", "#cloud-config\nfinal_message: nodes\n"))
	mustRun("cloud-init", "set", "nid001", "--secure", "-f", write("secure.yaml", "merge: deep\nuser-data: |\n  #cloud-config\n  runcmd: [secret-step]\n"))

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad cloud-config", []string{"cloud-init", "set", "compute", "-f", write("bad.yaml", "#cloud-config\nruncmd: ls\n")}, "line 2: key runcmd: want a list"},
		{"unknown target", []string{"cloud-init", "set", "gpu", "-f", tutorial}, "no such group"},
		{"no file", []string{"cloud-init", "set", "compute"}, "-f FILE is required"},
		{"get nothing", []string{"cloud-init", "get", "nid003"}, "no cloud-init data"},
		{"bad render", []string{"cloud-init", "get", "nid001", "--render", "secrets"}, `--render "secrets"`},
		{"rm nothing", []string{"cloud-init", "rm", "nid003"}, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, append(st, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}

	var list []struct {
		Scope, Name string
		Secure      bool
		Files       []string
	}
	if err := json.Unmarshal([]byte(mustRun("-o", "json", "cloud-init", "ls")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 || list[0].Name != "compute" || !list[2].Secure || list[3].Name != "nid002" {
		t.Fatalf("ls: %+v", list)
	}
	ud := mustRun("cloud-init", "get", "nid001", "--render", "user-data")
	if !strings.HasPrefix(ud, "#cloud-config\n") || !strings.Contains(ud, "echo hi") || !strings.Contains(ud, "final_message: nodes") || strings.Contains(ud, "secret-step") {
		t.Errorf("public render of nid001:\n%s", ud)
	}
	if sec := mustRun("cloud-init", "get", "nid001", "--render", "user-data", "--secure"); !strings.Contains(sec, "secret-step") || !strings.Contains(sec, "echo hi") {
		t.Errorf("secure render of nid001 (deep merge keeps the group's runcmd):\n%s", sec)
	}
	md := mustRun("cloud-init", "get", "nid001", "--render", "meta-data")
	if !strings.Contains(md, "instance-id: i-") || !strings.Contains(md, "local-hostname: nid001") || !strings.Contains(md, "role: worker") {
		t.Errorf("meta-data of nid001:\n%s", md)
	}
	if again := mustRun("cloud-init", "get", "nid001", "--render", "meta-data"); again != md {
		t.Errorf("instance-id changed between previews:\n%s\n%s", md, again)
	}
	if ls := mustRun("node", "ls", "-o", "json"); strings.Contains(ls, "secret-step") {
		t.Error("node ls shows the secure part")
	}
	inv, _ := os.ReadFile(filepath.Join(state, "nodes.yaml"))
	if strings.Contains(string(inv), "secret-step") || strings.Contains(string(inv), "echo hi") {
		t.Error("nodes.yaml holds cloud-init data")
	}
	mustRun("cloud-init", "rm", "nid[001-002]")
	mustRun("cloud-init", "rm", "nid001", "--secure")
	if out := mustRun("-o", "json", "cloud-init", "ls"); strings.Contains(out, "nid00") {
		t.Errorf("after rm: %s", out)
	}
}
