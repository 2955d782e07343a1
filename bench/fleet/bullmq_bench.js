// bench/fleet/bullmq_bench.js: worker | driver N. A job runs `sh -c cat` (or
// the argv in BENCH_CMD, a JSON array: bwrap around it, a sleeping agent) as a
// child process with its data on stdin; the driver adds N jobs (addBulk) and
// waits until all completed.
const { Queue, Worker, QueueEvents } = require('bullmq');
const { spawn } = require('child_process');
const connection = { host: '127.0.0.1', port: Number(process.env.BENCH_PORT) };
const mode = process.argv[2];

const argv = process.env.BENCH_CMD ? JSON.parse(process.env.BENCH_CMD) : ['sh', '-c', 'cat'];

function cat(input) {
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0], argv.slice(1));
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('error', reject);
    p.on('close', () => resolve(out));
    p.stdin.end(input);
  });
}

if (mode === 'worker') {
  new Worker('bench', async (job) => cat(JSON.stringify(job.data)), { connection, concurrency: Number(process.env.BENCH_CONCURRENCY || 2) });
} else {
  (async () => {
    const n = Number(process.argv[3]);
    const q = new Queue('bench', { connection });
    const t0 = process.hrtime.bigint();
    const jobs = [];
    for (let i = 0; i < n; i++) jobs.push({ name: 'noop', data: { i }, opts: { removeOnComplete: false } });
    await q.addBulk(jobs);
    for (;;) {
      const c = await q.getJobCounts('completed', 'failed');
      if (c.completed + c.failed >= n) {
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        console.log(JSON.stringify({ tasks: n, seconds: +s.toFixed(3), per_s: +(n / s).toFixed(1), failed: c.failed }));
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await q.close();
  })();
}
