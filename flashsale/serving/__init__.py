"""Running the order service (`flashsale.http`'s application) as processes: in this process on uvicorn
(`process`), as the parent of `--workers N` worker processes on one port (`workers`), and as a child of a script or
a test on a free loopback port (`server_process`).
"""

# Exit statuses of `flashsale serve` beyond 0 (stopped by SIGTERM, drained), 2 (bad options) and 130 (Ctrl-C); here,
# so that the command line can name them without loading the application.
EXIT_NOT_STARTED = 3  # the port is taken, the database cannot be reached, or a worker did not start
EXIT_WORKERS_LOST = 4  # --workers N: every worker exited by itself, none was left to serve
EXIT_UNCLEAN_STOP = 5  # --workers N: stopped, but a worker did not exit with 0 (it died earlier, or it was killed)
