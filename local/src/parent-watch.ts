// Preloaded (`--import`) into every child of the local supervisor: if the
// supervisor dies without stopping its children (kill -9, a crash, a closed
// terminal), the child notices it was re-parented and shuts itself down, so local
// mode never leaves orphan processes holding ports and the journal.
const supervisor = Number(process.env.BERTH_SUPERVISOR_PID);

if (Number.isSafeInteger(supervisor) && supervisor > 0) {
  const timer = setInterval(() => {
    if (process.ppid === supervisor) return;
    clearInterval(timer);
    process.stderr.write(
      `${JSON.stringify({ level: "warn", time: new Date().toISOString(), msg: "supervisor is gone; shutting down", supervisor })}\n`,
    );
    // SIGTERM runs the process's own graceful shutdown; exit regardless soon after.
    process.kill(process.pid, "SIGTERM");
    setTimeout(() => process.exit(1), 5000).unref();
  }, 500);
  timer.unref();
}
