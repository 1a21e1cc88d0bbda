package kafkacluster

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
)

// FetchCommand is the command, run from the repository root, that fetches
// the broker's jars from Maven Central into the cache (needs mvn).
const FetchCommand = "internal/kafkacluster/fetch.sh"

// pomXML names the Kafka version once, for fetch.sh and for Version.
//
//go:embed pom.xml
var pomXML string

var versionRE = regexp.MustCompile(`<kafka\.version>([^<]+)</kafka\.version>`)

// Version returns the Apache Kafka version the cluster runs, the one
// pom.xml names.
func Version() string {
	m := versionRE.FindStringSubmatch(pomXML)
	if m == nil {
		panic("kafkacluster: pom.xml names no <kafka.version>")
	}
	return m[1]
}

// unavailableError says that the cluster cannot start on this machine
// because java or the broker's jars are missing: a test skips on it,
// unless it runs in CI.
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string { return e.reason }

// cacheDir is where fetch.sh puts the jars: $KAPPA_KAFKA_CACHE, else
// $XDG_CACHE_HOME/kappa/kafka, else ~/.cache/kappa/kafka. It reads the
// environment the same way as the script, on every OS.
func cacheDir() string {
	if d := os.Getenv("KAPPA_KAFKA_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "kappa", "kafka")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "kappa", "kafka")
}

// libsDir is the directory holding the jars of Version.
func libsDir() string {
	return filepath.Join(cacheDir(), "kafka-"+Version(), "libs")
}

// findJava returns $KAPPA_JAVA, else java from PATH.
func findJava() (string, error) {
	if j := os.Getenv("KAPPA_JAVA"); j != "" {
		if _, err := os.Stat(j); err != nil {
			return "", &unavailableError{fmt.Sprintf("kafkacluster: KAPPA_JAVA=%s: %v", j, err)}
		}
		return j, nil
	}
	j, err := exec.LookPath("java")
	if err != nil {
		return "", &unavailableError{"kafkacluster: java is not on PATH: install a JDK 17 or newer " +
			"(apt-get install openjdk-17-jdk-headless), or set KAPPA_JAVA to a java binary"}
	}
	return j, nil
}

var fetchMu sync.Mutex

// findLibs returns the directory of the broker's jars. When they are
// missing and KAPPA_KAFKA_FETCH=1, it runs fetch.sh first.
func findLibs() (string, error) {
	libs := libsDir()
	jar := filepath.Join(libs, "kafka_2.13-"+Version()+".jar")
	if _, err := os.Stat(jar); err == nil {
		return libs, nil
	}
	if os.Getenv("KAPPA_KAFKA_FETCH") == "1" {
		fetchMu.Lock()
		defer fetchMu.Unlock()
		if _, err := os.Stat(jar); err == nil {
			return libs, nil
		}
		if err := fetch(); err != nil {
			return "", err
		}
		if _, err := os.Stat(jar); err == nil {
			return libs, nil
		}
	}
	return "", &unavailableError{fmt.Sprintf("kafkacluster: the jars of Kafka %s are not in %s: "+
		"fetch them from Maven Central with %s (needs mvn), or set KAPPA_KAFKA_FETCH=1 to have the tests run it",
		Version(), libs, FetchCommand)}
}

// fetch runs fetch.sh from this package's source directory.
func fetch() error {
	if _, err := exec.LookPath("mvn"); err != nil {
		return &unavailableError{fmt.Sprintf("kafkacluster: KAPPA_KAFKA_FETCH=1 but mvn is not on PATH; "+
			"install Maven 3, or fetch the jars elsewhere with %s and set KAPPA_KAFKA_CACHE", FetchCommand)}
	}
	_, file, _, ok := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "fetch.sh")
	if _, err := os.Stat(script); !ok || err != nil {
		return errors.New("kafkacluster: cannot find fetch.sh beside the package source (built with -trimpath?); run " + FetchCommand)
	}
	out, err := exec.Command("bash", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kafkacluster: %s: %v\n%s", script, err, strings.TrimSpace(string(out)))
	}
	return nil
}
