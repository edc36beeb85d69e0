"""Running the order service (`flashsale.http`'s application) as processes: in this process on uvicorn
(`process`), as the parent of `--workers N` worker processes on one port (`workers`), and as a child of a script or
a test on a free loopback port (`server_process`).
"""
