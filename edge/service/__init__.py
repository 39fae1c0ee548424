"""Running as a service: logging (journald-aware), systemd notifications, signals, assembly.

    lifecycle.py  signals, the state directory, build_daemon()
    logs.py       logging set-up with syslog priority prefixes under journald
    notify.py     sd_notify: READY, WATCHDOG, STOPPING, STATUS
"""
