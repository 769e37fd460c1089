package cloudinit

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

func TestRenderMerge(t *testing.T) {
	group := Layer{Source: "group compute", Data: Data{UserData: `#cloud-config
write_files:
  - {path: /etc/group.txt, content: from-group}
runcmd: [[touch, /run/group]]
packages: [munge]
ntp: {enabled: true, servers: [10.0.0.1]}
`}}
	rack := func(mode MergeMode) Layer {
		return Layer{Source: "group rack1", Data: Data{Merge: mode, UserData: `#cloud-config
write_files:
  - {path: /etc/rack.txt, content: from-rack}
runcmd: [[touch, /run/rack]]
ntp: {servers: [10.0.0.2]}
`}}
	}
	node := Layer{Source: "node nid001", Data: Data{UserData: "#cloud-config\npackages: [slurmd]\n"}}
	tests := []struct {
		name   string
		layers []Layer
		want   map[string]any
	}{
		{"none", nil, map[string]any{}},
		{"one group", []Layer{group}, map[string]any{
			"write_files": []any{map[string]any{"path": "/etc/group.txt", "content": "from-group"}},
			"runcmd":      []any{[]any{"touch", "/run/group"}},
			"packages":    []any{"munge"},
			"ntp":         map[string]any{"enabled": true, "servers": []any{"10.0.0.1"}},
		}},
		{"replace: top-level keys of the later group win, the node's packages win", []Layer{group, rack(""), node}, map[string]any{
			"write_files": []any{map[string]any{"path": "/etc/rack.txt", "content": "from-rack"}},
			"runcmd":      []any{[]any{"touch", "/run/rack"}},
			"packages":    []any{"slurmd"},
			"ntp":         map[string]any{"servers": []any{"10.0.0.2"}},
		}},
		{"deep: lists append, mappings merge, the node still replaces", []Layer{group, rack(Deep), node}, map[string]any{
			"write_files": []any{
				map[string]any{"path": "/etc/group.txt", "content": "from-group"},
				map[string]any{"path": "/etc/rack.txt", "content": "from-rack"},
			},
			"runcmd":   []any{[]any{"touch", "/run/group"}, []any{"touch", "/run/rack"}},
			"packages": []any{"slurmd"},
			"ntp":      map[string]any{"enabled": true, "servers": []any{"10.0.0.1", "10.0.0.2"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, err := Render(tc.layers, Facts{InstanceID: "i-1", Hostname: "nid001", ClusterName: "demo"})
			if err != nil {
				t.Fatal(err)
			}
			ud := string(files[UserData])
			if !strings.HasPrefix(ud, "#cloud-config\n") {
				t.Fatalf("user-data does not start with #cloud-config:\n%s", ud)
			}
			var got map[string]any
			if err := yaml.Unmarshal([]byte(ud), &got); err != nil {
				t.Fatal(err)
			}
			if got == nil {
				got = map[string]any{}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("merged user-data (-want +got):\n%s", diff)
			}
			if _, ok := files[NetworkConfig]; ok {
				t.Error("network-config rendered though no layer sets it")
			}
			if _, ok := files[VendorData]; !ok {
				t.Error("no vendor-data")
			}
		})
	}
}

func TestRenderMetaData(t *testing.T) {
	tests := []struct {
		name   string
		layers []Layer
		want   map[string]any
	}{
		{"defaults", nil, map[string]any{"instance-id": "i-1", "local-hostname": "nid001", "cluster-name": "demo"}},
		{"set values win", []Layer{
			{Source: "group g", Data: Data{MetaData: "cluster-name: north\nrack: 1\n"}},
			{Source: "node n", Data: Data{MetaData: "local-hostname: nid001.north\n"}},
		}, map[string]any{"instance-id": "i-1", "local-hostname": "nid001.north", "cluster-name": "north", "rack": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, err := Render(tc.layers, Facts{InstanceID: "i-1", Hostname: "nid001", ClusterName: "demo"})
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := yaml.Unmarshal(files[MetaData], &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("meta-data (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenderOpaqueBodies(t *testing.T) {
	jinja := "## template: jinja\n#cloud-config\nruncmd:\n  - echo {{ v1.local_hostname }} > /run/name\n"
	files, err := Render([]Layer{{Source: "node n", Data: Data{UserData: jinja, NetworkConfig: "version: 2\nethernets: {}\n"}}}, Facts{InstanceID: "i-1"})
	if err != nil {
		t.Fatal(err)
	}
	if string(files[UserData]) != jinja {
		t.Errorf("jinja body changed:\n%s", files[UserData])
	}
	if !strings.Contains(string(files[NetworkConfig]), "version: 2") {
		t.Errorf("network-config: %q", files[NetworkConfig])
	}
	_, err = Render([]Layer{
		{Source: "group g", Data: Data{UserData: "#cloud-config\nruncmd: [a]\n"}},
		{Source: "node n", Data: Data{UserData: jinja}},
	}, Facts{})
	if err == nil || !strings.Contains(err.Error(), "node n") || !strings.Contains(err.Error(), "group g") {
		t.Errorf("jinja merged with cloud-config: err = %v, want both layers named", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		d    Data
		want []string // substrings of the error; none = valid
	}{
		{"cloud-config", Data{UserData: "#cloud-config\nruncmd: [ls]\n"}, nil},
		{"jinja untouched", Data{UserData: "## template: jinja\n#cloud-config\n{% if x %}: [\n"}, nil},
		{"script", Data{UserData: "#!/bin/sh\necho hi\n"}, nil},
		{"disabled only", Data{Disabled: true}, nil},
		{"empty", Data{}, []string{"no user-data"}},
		{"no header", Data{UserData: "runcmd: [ls]\n"}, []string{"user-data: line 1", "#cloud-config"}},
		{"bad yaml", Data{UserData: "#cloud-config\nruncmd:\n  - ls\n bad: [\n"}, []string{"user-data", "line"}},
		{"duplicate key", Data{UserData: "#cloud-config\nruncmd: [a]\nruncmd: [b]\n"}, []string{"line 3", "runcmd"}},
		{"scalar runcmd", Data{UserData: "#cloud-config\nruncmd: echo hi\n"}, []string{"user-data: line 2: key runcmd: want a list"}},
		{"write_files without path", Data{VendorData: "#cloud-config\nwrite_files:\n  - content: x\n"}, []string{"vendor-data: line 3: key write_files[0]: no path"}},
		{"meta-data list", Data{MetaData: "- a\n"}, []string{"meta-data: line 1: want a mapping"}},
		{"bad merge", Data{UserData: "#cloud-config\n{}\n", Merge: "append"}, []string{`merge "append"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.d.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid data refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestParseTutorialPayload reads the body the OpenCHAMI cloud-init tutorial
// posts, in JSON, and the other two forms Parse takes.
func TestParseTutorialPayload(t *testing.T) {
	tutorial := `{
  "name": "compute",
  "cloud-init": {
    "userdata": {
      "write_files": [{"content": "hello world", "path": "/etc/hello"}],
      "runcmd": ["echo hello from cloud-init"]
    },
    "metadata": {"groups": {"compute": {"syslog_aggregator": "192.168.0.1"}}},
    "vendordata": {}
  }
}`
	name, d, err := Parse("compute.json", []byte(tutorial))
	if err != nil {
		t.Fatal(err)
	}
	if name != "compute" || !strings.HasPrefix(d.UserData, "#cloud-config\n") || d.VendorData != "" {
		t.Fatalf("name %q, data %+v", name, d)
	}
	files, err := Render([]Layer{{Source: "group compute", Data: d}}, Facts{InstanceID: "i-1", Hostname: "nid001"})
	if err != nil {
		t.Fatal(err)
	}
	var ud struct {
		WriteFiles []map[string]string `yaml:"write_files"`
		Runcmd     []string            `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal(files[UserData], &ud); err != nil {
		t.Fatal(err)
	}
	if len(ud.WriteFiles) != 1 || ud.WriteFiles[0]["path"] != "/etc/hello" || len(ud.Runcmd) != 1 {
		t.Errorf("user-data from the tutorial payload: %+v", ud)
	}
	if !strings.Contains(string(files[MetaData]), "syslog_aggregator: 192.168.0.1") {
		t.Errorf("meta-data lost the payload's groups:\n%s", files[MetaData])
	}

	for _, tc := range []struct{ name, body, wantUser string }{
		{"bare cloud-config", "#cloud-config\nruncmd: [ls]\n", "#cloud-config\nruncmd: [ls]\n"},
		{"own form", "user-data: |\n  #cloud-config\n  runcmd: [ls]\nmerge: deep\n", "#cloud-config\nruncmd: [ls]\n"},
	} {
		_, d, err := Parse(tc.name, []byte(tc.body))
		if err != nil || d.UserData != tc.wantUser {
			t.Errorf("%s: %+v, %v", tc.name, d, err)
		}
	}
	if _, _, err := Parse("bad.yaml", []byte("usr-data: x\n")); err == nil || !strings.Contains(err.Error(), "usr-data") {
		t.Errorf("unknown field: err = %v, want it named", err)
	}
	if _, _, err := Parse("bad.json", []byte(`{"name": "x", "cloud-init": {"userdata": {"runcmd": "ls"}}}`)); err == nil || !strings.Contains(err.Error(), "runcmd") {
		t.Errorf("payload with a scalar runcmd: err = %v", err)
	}
}
