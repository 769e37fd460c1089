package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imgctl/imgctl/bootsvc/nodestate"
	"github.com/imgctl/imgctl/bootsvc/nodetoken"
	"github.com/imgctl/imgctl/bootsvc/store/filestore"
	"github.com/imgctl/imgctl/bootsvc/vmboot"
	"github.com/imgctl/imgctl/images"
	"github.com/imgctl/imgctl/internal/testenv"
)

// cloudInitArtifacts builds boot-cloudinit (boot-tiny plus Debian's
// cloud-init and sshd) and its boot artifacts.
func cloudInitArtifacts(t *testing.T) *images.Entry {
	return recipeArtifacts(t, "test/fixtures/layers/boot-cloudinit.yaml")
}

// Cloud-init data the test stores: the group writes a file and runs a
// command, the node overrides the group's bootcmd, and the node's secure
// part (merge: deep, so the group's write_files stay) writes the munge key.
const (
	ciGroupData = `#cloud-config
write_files:
  - path: /etc/imgctl-group.txt
    content: "written for group compute\n"
    permissions: "0644"
runcmd:
  - [sh, -c, "echo group-runcmd > /run/imgctl-runcmd"]
bootcmd:
  - [sh, -c, "echo group > /run/imgctl-bootcmd"]
`
	ciNodeData = `#cloud-config
bootcmd:
  - [sh, -c, "echo node > /run/imgctl-bootcmd"]
`
	ciMungeKey   = "imgctl-e2e-munge-key-0123456789"
	ciSecureData = `merge: deep
user-data: |
  #cloud-config
  write_files:
    - path: /etc/munge/munge.key
      content: ` + ciMungeKey + `
      permissions: "0400"
`
)

var seedArgRE = regexp.MustCompile(`(?:^| )ds=nocloud-net;s=(http://[0-9.:]+/cloud-init/)(t1\.[A-Za-z0-9_-]+)/(?: |$)`)

// TestCloudInitBoot boots one QEMU node with Debian's cloud-init through
// the real `imgctl serve`: cloud-init must read meta-data, user-data and
// vendor-data from our seed URL (status 200), finish without errors, and
// leave the merged files; the secure path must refuse another node's token
// and a missing one; and cloud-init must not hold the boot up waiting for
// the network.
func TestCloudInitBoot(t *testing.T) {
	requireVM(t, "mmdebstrap", "mksquashfs", "ssh-keygen")
	bin := imgctl(t)
	var set *images.Entry
	t.Run("fixture", func(t *testing.T) { set = cloudInitArtifacts(t) })
	if set == nil {
		t.Fatal("no bootable artifact set")
	}
	// An NFS root: under TCG, cloud-init's Python faulting its modules in
	// from a live root's squashfs took over 9 minutes on a loaded machine;
	// the NFS root crosses that stretch several times faster (HACKING.md).
	testenv.RequireCommands(t, "ganesha.nfsd")
	b := newBootNode(t, bin, set, "ci01", "52:54:00:66:00:11", "10.66.0.11", "nfs", e2eKey(t))
	cli := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--state", b.state, "-q"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("imgctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// ci02 never boots: its token is "another node's" for the secure path.
	cli("", "group", "add", "compute")
	cli("", "node", "add", "ci02", "--mac", "52:54:00:66:00:12", "--ip", "10.66.0.12", "--image", set.Manifest.Name)
	cli("", "node", "set", "ci[01-02]", "--group", "compute")
	cli(ciGroupData, "cloud-init", "set", "compute", "-f", "-")
	cli(ciNodeData, "cloud-init", "set", "ci01", "-f", "-")
	cli(ciSecureData, "cloud-init", "set", "ci01", "--secure", "-f", "-")

	st, err := filestore.Open(context.Background(), filestore.Options{StateDir: b.state})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checked := false
	onBooted := func(ctx context.Context, n vmboot.BootedNode) error {
		checked = true
		run := func(cmd string) (string, error) {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			out, err := n.Output(cctx, cmd)
			return string(out), err
		}
		must := func(cmd string) string {
			out, err := run(cmd)
			if err != nil {
				t.Errorf("on the node: %s: %v", cmd, err)
			}
			return out
		}
		cmdline := must("cat /proc/cmdline")
		m := seedArgRE.FindStringSubmatch(strings.TrimSpace(cmdline))
		if m == nil {
			return fmt.Errorf("/proc/cmdline has no ds=nocloud-net;s=URL/ argument intact: %s", cmdline)
		}
		base, token := m[1], m[2]
		// cloud-final runs after multi-user, which is when the node phoned home.
		status, _ := run("cloud-init status --wait --long")
		t.Logf("cloud-init status --long:\n%s", status)
		if !strings.Contains(status, "status: done") {
			t.Errorf("cloud-init status: want done\n%s", status)
		}
		result := must("cat /run/cloud-init/result.json")
		var res struct {
			V1 struct {
				Datasource string   `json:"datasource"`
				Errors     []string `json:"errors"`
			} `json:"v1"`
		}
		if err := json.Unmarshal([]byte(result), &res); err != nil {
			t.Errorf("result.json %q: %v", result, err)
		}
		if len(res.V1.Errors) != 0 || !strings.Contains(res.V1.Datasource, "NoCloudNet") || !strings.Contains(res.V1.Datasource, base+token+"/") {
			t.Errorf("cloud-init result: %s", result)
		}
		log := must("grep -F 'Read from ' /var/log/cloud-init.log")
		for _, f := range []string{"meta-data", "user-data", "vendor-data"} {
			// One attempt each: cloud-init neither retried nor waited for us.
			want := regexp.MustCompile(`Read from ` + regexp.QuoteMeta(base+token+"/"+f) + ` \(200, \d+b\) after 1 attempts`)
			if !want.MatchString(log) {
				t.Errorf("cloud-init.log does not show %s read from our URL with 200 at the first attempt:\n%s", f, log)
			}
		}
		if w := must("grep -c 'WARNING\\|Traceback' /var/log/cloud-init.log || true"); strings.TrimSpace(w) != "0" {
			t.Logf("cloud-init.log warnings:\n%s", must("grep -B2 -A8 'WARNING\\|Traceback' /var/log/cloud-init.log | head -60"))
		}
		files := must("stat -c '%a %U:%G %n' /etc/munge/munge.key /etc/imgctl-group.txt; cat /etc/munge/munge.key; echo; cat /etc/imgctl-group.txt /run/imgctl-bootcmd /run/imgctl-runcmd")
		for _, want := range []string{"400 root:root /etc/munge/munge.key", "644 root:root /etc/imgctl-group.txt",
			ciMungeKey, "written for group compute", "node\n", "group-runcmd"} {
			if !strings.Contains(files, want) {
				t.Errorf("node files lack %q:\n%s", want, files)
			}
		}
		if strings.Contains(files, "group\n") {
			t.Errorf("the group's bootcmd ran, the node's should have replaced it:\n%s", files)
		}
		// The secure path: only this node's own token is good here.
		tokens, err := nodetoken.LoadSecret(filepath.Join(b.state, "httpboot.secret"))
		if err != nil {
			return err
		}
		other := tokens.Make("ci02", "52:54:00:66:00:12", "10.66.0.12")
		for _, tc := range []struct{ url, want string }{
			{base + token + "/user-data", "200"},
			{base + other + "/user-data", "403"},
			{base + "user-data", "403"},
		} {
			code := strings.TrimSpace(must("curl -s -o /dev/null -w '%{http_code}' " + tc.url))
			if code != tc.want {
				t.Errorf("GET %s from the node: %s, want %s", strings.Replace(tc.url, token, "<token>", 1), code, tc.want)
			}
		}
		blame := must("systemctl is-system-running --wait >/dev/null || true; systemd-analyze blame | head -20; systemd-analyze")
		t.Logf("systemd-analyze blame:\n%s", blame)
		if strings.Contains(blame, "wait-online") {
			t.Errorf("a network wait-online unit ran on the node:\n%s", blame)
		}
		return nil
	}
	bootSlots <- struct{}{}
	res, err := vmboot.Boot(context.Background(), vmboot.Options{
		StateDir: b.state, Nodes: st, States: st, HostKeys: st, Exe: b.bin,
		MemoryMiB: 1536, OnBooted: onBooted, Timeout: 18 * time.Minute,
	}, b.name)
	<-bootSlots
	t.Logf("%s: %.1fs, accel %s (%s)", b.name, res.Seconds, res.Accel, res.AccelReason)
	if err != nil {
		t.Fatalf("vm boot: %v\n%s\n--- cloud-init lines:\n%s", err, b.tails(t), b.grep("cloud-init"))
	}
	if !checked {
		t.Fatal("OnBooted never ran")
	}
	serveLog, _ := os.ReadFile(res.ServeLog)
	for _, f := range []string{"meta-data", "user-data", "vendor-data"} {
		if want := "msg=cloud-init server=http node=ci01 ip=10.66.0.11 file=" + f; !strings.Contains(string(serveLog), want) {
			t.Errorf("serve log lacks %q", want)
		}
	}
	for _, want := range []string{`why="token not valid for this node" node=ci01`, `why="missing token"`} {
		if !strings.Contains(string(serveLog), want) {
			t.Errorf("serve log lacks the refusal %q", want)
		}
	}
	if strings.Contains(string(serveLog), ciMungeKey) {
		t.Error("serve log holds the munge key")
	}
	n, err := st.State(context.Background(), b.name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Phases[nodestate.CloudInit]; !ok || !strings.HasPrefix(n.CloudInit, "meta-data user-data vendor-data") {
		t.Errorf("record: phases %v, cloud-init %q; want the cloud-init phase with its files", n.Phases, n.CloudInit)
	}
	ls := cli("", "node", "ls", "ci01")
	t.Logf("node ls:\n%s", ls)
	if !strings.Contains(ls, "cloud-init ") || strings.Contains(ls, ciMungeKey) {
		t.Errorf("node ls: want the cloud-init phase and no secret:\n%s", ls)
	}
}

// grep returns the console and serve log lines that mention s.
func (b *bootNode) grep(s string) string {
	var out []string
	for _, f := range []string{"console.log", "serve.log"} {
		data, _ := os.ReadFile(filepath.Join(b.state, "vm", b.name, f))
		for _, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, s) {
				out = append(out, f+": "+l)
			}
		}
	}
	return strings.Join(out, "\n")
}
