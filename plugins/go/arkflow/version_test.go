package arkflow

import (
	"os"
	"strings"
	"testing"
)

// The SDK's version is written in three places: SDKVersion, go.mod's comment and ABIVersion.
func TestVersion(t *testing.T) {
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "SDK, version "+SDKVersion+" ") {
		t.Errorf("go.mod does not say version %s", SDKVersion)
	}
	if SDKVersion != ABIVersion {
		t.Errorf("SDKVersion %s != ABIVersion %s", SDKVersion, ABIVersion)
	}
}
