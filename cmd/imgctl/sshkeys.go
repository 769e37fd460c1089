package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// readAuthorizedKeys reads public keys from files in authorized_keys format,
// rejecting anything ssh would not accept so a typo is caught here rather
// than as a locked-out node. An empty path clears the list.
func readAuthorizedKeys(paths []string) ([]string, error) {
	keys := []string{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--ssh-key-file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" || strings.HasPrefix(text, "#") {
				continue
			}
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text)); err != nil {
				return nil, fmt.Errorf("%s:%d: not a public key: %w", p, line, err)
			}
			keys = append(keys, text)
		}
	}
	return keys, nil
}
