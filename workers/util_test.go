package workers

import (
	"encoding/json"
	"fmt"
)

func fmtSscanf(s, format string, args ...any) (int, error) { return fmt.Sscanf(s, format, args...) }

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
