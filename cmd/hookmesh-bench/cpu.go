package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc: the kernel reports them in
// USER_HZ ticks, which is 100 on every Linux architecture Go runs on
// (proc(5), sysconf(_SC_CLK_TCK)).
const userHZ = 100

// cpuSample is the CPU time used so far by the watched processes and the
// whole machine, at one moment.
type cpuSample struct {
	at time.Time
	// procs[i] holds the user+system seconds of each process of item i of
	// the meter, by pid; empty when none could be read.
	procs []map[int]float64
	// busy and total are the machine's non-idle and all CPU seconds, summed
	// over its CPUs (/proc/stat).
	busy, total float64
}

// cpuMeter samples the CPU time of some processes and of the machine.
type cpuMeter struct {
	items []watched
	self  int
}

// newCPUMeter measures hookmesh (when pid is not 0), the benchmark itself
// (its receiver and clients share the machine with hookmesh) and the
// watched processes; it fails when a process given by pid cannot be read.
func newCPUMeter(pid int, watch []watched) (*cpuMeter, error) {
	m := &cpuMeter{self: os.Getpid()}
	if pid != 0 {
		m.items = append(m.items, watched{name: "hookmesh", pid: pid})
	}
	m.items = append(m.items, watched{name: "bench", pid: m.self})
	m.items = append(m.items, watch...)
	for _, w := range m.items {
		if w.pid == 0 {
			continue
		}
		if _, err := procCPU(w.pid); err != nil {
			return nil, fmt.Errorf("measure CPU of %s (pid %d): %w", w.name, w.pid, err)
		}
	}
	return m, nil
}

func (m *cpuMeter) sample() cpuSample {
	s := cpuSample{at: time.Now(), procs: make([]map[int]float64, len(m.items))}
	var cmdlines, comms map[int]string
	for i, w := range m.items {
		s.procs[i] = make(map[int]float64)
		if w.pid != 0 {
			if v, err := procCPU(w.pid); err == nil {
				s.procs[i][w.pid] = v
			}
			continue
		}
		if w.comm != "" {
			if comms == nil {
				comms = processNames()
			}
			for pid, comm := range comms {
				if comm != w.comm {
					continue
				}
				if v, err := procCPU(pid); err == nil {
					s.procs[i][pid] = v
				}
			}
			continue
		}
		if cmdlines == nil {
			cmdlines = processes()
		}
		for pid, cmd := range cmdlines {
			// Our own command line names what -watch matches.
			if pid == m.self || !strings.Contains(cmd, w.match) {
				continue
			}
			if v, err := procCPU(pid); err == nil {
				s.procs[i][pid] = v
			}
		}
	}
	s.busy, s.total, _ = machineCPU()
	return s
}

// processes returns the command line of every process, by pid.
func processes() map[int]string {
	return procFiles("cmdline", func(b []byte) string { return strings.ReplaceAll(string(b), "\x00", " ") })
}

// processNames returns the executable name of every process (comm: what
// ps shows without arguments, e.g. "postgres" for every PostgreSQL process
// whatever its title), by pid.
func processNames() map[int]string {
	return procFiles("comm", func(b []byte) string { return strings.TrimSuffix(string(b), "\n") })
}

// procFiles reads /proc/PID/name of every process, by pid, as text says;
// a process whose file is empty or gone is left out.
func procFiles(name string, text func([]byte) string) map[int]string {
	out := make(map[int]string)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/" + name)
		if err != nil || len(b) == 0 {
			continue
		}
		out[pid] = text(b)
	}
	return out
}

// cpuUse is the CPU time one watched item used over a window.
type cpuUse struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	// CorePct is of one CPU; MachinePct of all of them.
	CorePct    float64 `json:"core_pct"`
	MachinePct float64 `json:"machine_pct"`
	// Gone is true when the process could not be read at the window's end.
	Gone bool `json:"gone,omitempty"`
}

// cpuWindow is the CPU used between two samples.
type cpuWindow struct {
	WallSeconds    float64  `json:"wall_seconds"`
	CPUs           int      `json:"cpus"`
	MachineBusyPct float64  `json:"machine_busy_pct"`
	Procs          []cpuUse `json:"procs"`
	// OtherSeconds is the machine's busy CPU time that none of Procs used:
	// other workloads on the machine, and the kernel's own work.
	OtherSeconds float64 `json:"other_seconds"`
}

// window is the CPU used between a and b. A process that appeared in
// between counts from zero; one that exited counts for nothing.
func (m *cpuMeter) window(a, b cpuSample) cpuWindow {
	wall := b.at.Sub(a.at).Seconds()
	w := cpuWindow{WallSeconds: wall, CPUs: runtime.NumCPU()}
	if total := b.total - a.total; total > 0 {
		w.MachineBusyPct = 100 * (b.busy - a.busy) / total
	}
	w.OtherSeconds = b.busy - a.busy
	for i, item := range m.items {
		u := cpuUse{Name: item.name}
		if item.pid != 0 && len(b.procs[i]) == 0 {
			u.Gone = true
		}
		for pid, v := range b.procs[i] {
			u.Seconds += v - a.procs[i][pid]
		}
		if wall > 0 {
			u.CorePct = 100 * u.Seconds / wall
			u.MachinePct = u.CorePct / float64(w.CPUs)
		}
		w.Procs = append(w.Procs, u)
		w.OtherSeconds -= u.Seconds
	}
	w.OtherSeconds = max(w.OtherSeconds, 0)
	return w
}

// procCPU is the user+system CPU seconds of a process so far (fields 14 and
// 15 of /proc/PID/stat).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

func parseProcStat(s string) (float64, error) {
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("no command name in /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, errors.New("too few fields in /proc/PID/stat")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc/PID/stat: %w", err)
	}
	return float64(utime+stime) / userHZ, nil
}

// machineCPU returns the busy and total CPU seconds of all CPUs so far.
func machineCPU() (busy, total float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseMachineStat(string(b))
}

func parseMachineStat(s string) (busy, total float64, err error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("no cpu line in /proc/stat")
	}
	var idle uint64
	var all uint64
	// user nice system idle iowait irq softirq steal (guest time is already
	// counted in user and nice).
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		all += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return float64(all-idle) / userHZ, float64(all) / userHZ, nil
}
