package httpboot

import (
	"encoding/json"
	"regexp"
)

func jsonMarshal(v any) ([]byte, error) { return json.MarshalIndent(v, "", " ") }

func regexpMust(re string) *regexp.Regexp { return regexp.MustCompile(re) }
