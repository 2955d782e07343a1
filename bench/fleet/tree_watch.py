"""bench/fleet/tree_watch.py PID STOPFILE: sample the process tree of PID every
0.25 s until STOPFILE exists; at the sample with the most processes, sum RSS and
PSS (smaps_rollup) over the tree and note the root's threads and fds. Also the
lowest MemAvailable seen. Prints: peak_rss_kB peak_pss_kB min_avail_kB threads fds procs"""
import os, sys, time

def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out

def mem(pids):
    rss = pss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"): rss += int(line.split()[1])
                    elif line.startswith("Pss:"): pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss

def avail():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"): return int(line.split()[1])

root, stop = int(sys.argv[1]), sys.argv[2]
best = (0, 0, 0, 0, 0)
minav = avail()
while not os.path.exists(stop):
    pids = tree(root)
    minav = min(minav, avail())
    if len(pids) > best[4]:
        rss, pss = mem(pids)
        try:
            thr = len(os.listdir(f"/proc/{root}/task")); fds = len(os.listdir(f"/proc/{root}/fd"))
        except OSError:
            thr = fds = 0
        best = (rss, pss, thr, fds, len(pids))
    time.sleep(0.25)
print(best[0], best[1], minav, best[2], best[3], best[4])
