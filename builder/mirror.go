package builder

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// AptSourcesDir and AptSourcesList are where the build host keeps its apt
// sources; the default bootstrap mirror is read from them so that no mirror
// host name lives in imgctl or its recipes.
const (
	AptSourcesDir  = "/etc/apt/sources.list.d"
	AptSourcesList = "/etc/apt/sources.list"
)

// HostMirror returns the build host's apt mirror URI for distro ("debian" or
// "ubuntu"): the first `deb` source whose URI path ends in /<distro> and which
// is not a security archive.
func HostMirror(distro string) (string, error) {
	var uris []string
	files, _ := filepath.Glob(filepath.Join(AptSourcesDir, "*.sources"))
	sort.Strings(files)
	for _, f := range files {
		uris = append(uris, deb822URIs(f)...)
	}
	lists, _ := filepath.Glob(filepath.Join(AptSourcesDir, "*.list"))
	sort.Strings(lists)
	for _, f := range append([]string{AptSourcesList}, lists...) {
		uris = append(uris, oneLineURIs(f)...)
	}
	for _, u := range uris {
		u = strings.TrimRight(u, "/")
		if strings.HasSuffix(u, "/"+distro) && !strings.Contains(u, "security") {
			return u, nil
		}
	}
	return "", fmt.Errorf("no %s mirror in the build host's apt sources (%s, %s): set bootstrap.mirror", distro, AptSourcesDir, AptSourcesList)
}

// deb822URIs reads the URIs of Types: deb stanzas of a .sources file.
func deb822URIs(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out, stanza []string
	isDeb := false
	flush := func() {
		if isDeb {
			out = append(out, stanza...)
		}
		stanza, isDeb = nil, false
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			flush()
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "types":
			isDeb = containsWord(v, "deb")
		case "uris":
			stanza = append(stanza, strings.Fields(v)...)
		}
	}
	flush()
	return out
}

// oneLineURIs reads the URIs of `deb` lines of a sources.list file.
func oneLineURIs(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		i := 1
		if strings.HasPrefix(fields[1], "[") { // options: [arch=amd64 signed-by=…]
			for i < len(fields) && !strings.HasSuffix(fields[i], "]") {
				i++
			}
			i++
		}
		if i < len(fields) {
			out = append(out, fields[i])
		}
	}
	return out
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}
