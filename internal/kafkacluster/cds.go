package kafkacluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// Class data sharing: a broker JVM loads some ten thousand classes as it
// starts, and three of them doing so at once on a small machine is most of
// a cluster's startup. A dynamic CDS archive (JDK 13 and later) holds those
// classes parsed and verified; with it a node starts on about a third less
// CPU, and the nodes share the archive's pages.
//
// The archive is written by the first node a test binary starts when there
// is none, as that JVM exits after SIGTERM; a SIGKILLed one writes nothing,
// and a later node tries again. It is kept beside the jars, one per JVM,
// since an archive fits only the JVM that wrote it and the classpath it
// was written with. A JVM given an archive that does not fit warns in its
// stdout.log and runs without it; delete the cds directory to have the
// archive written again.

var cds struct {
	mu      sync.Mutex
	dumping bool // a node of this process is to write the archive
}

// cdsDump describes the archive a JVM writes as it exits.
type cdsDump struct {
	tmp, archive string
}

// cdsFlags returns the flags that make a JVM use the archive for java, or,
// if dump and there is none yet, write it when it exits; then it returns
// the dump to finish with done once the JVM has exited. It returns no
// flags when the archive cannot be kept.
func cdsFlags(java, libs string, dump bool) ([]string, *cdsDump) {
	archive := cdsArchive(java, libs)
	if archive == "" {
		return nil, nil
	}
	if fileExists(archive) {
		return []string{"-XX:SharedArchiveFile=" + archive}, nil
	}
	cds.mu.Lock()
	defer cds.mu.Unlock()
	if !dump || cds.dumping {
		return nil, nil
	}
	cds.dumping = true
	d := &cdsDump{tmp: fmt.Sprintf("%s.%d.tmp", archive, os.Getpid()), archive: archive}
	// Writing the archive warns of every class it leaves out.
	return []string{"-Xlog:cds*=error", "-XX:ArchiveClassesAtExit=" + d.tmp}, d
}

// done puts the archive in place if the JVM, cmd, exited by itself (and
// so finished writing it), and lets another node write it if not.
func (d *cdsDump) done(cmd *exec.Cmd) {
	if d == nil {
		return
	}
	if cmd.ProcessState != nil && cmd.ProcessState.Exited() && fileExists(d.tmp) {
		os.Rename(d.tmp, d.archive)
	}
	os.Remove(d.tmp)
	cds.mu.Lock()
	cds.dumping = false
	cds.mu.Unlock()
}

// cdsArchive names the archive for java: in a cds directory beside the
// jars, keyed by the path, size and time of the JVM library (or, where it
// is not found, of the java binary), so that a new JDK gets an archive of
// its own. It returns "" if that directory cannot be made.
func cdsArchive(java, libs string) string {
	real, err := filepath.EvalSymlinks(java)
	if err != nil {
		return ""
	}
	if jvm := filepath.Join(filepath.Dir(real), "..", "lib", "server", "libjvm.so"); fileExists(jvm) {
		real = filepath.Clean(jvm)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return ""
	}
	dir := filepath.Join(filepath.Dir(libs), "cds")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s %d %d", real, fi.Size(), fi.ModTime().UnixNano()))
	return filepath.Join(dir, "java-"+hex.EncodeToString(sum[:8])+".jsa")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
