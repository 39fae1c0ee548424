"""The commissioning console: a small web app the daemon serves while commissioning and debugging.

    publisher.py  Console: the console as the daemon sees it (frame observer + publisher), registered in start-up
    live.py       LiveState: the latest frame, result and state, a minute of probabilities, recent changes (lock-free)
    server.py     ConsoleServer: Tornado on its own thread; the request guard (Host, login, CSRF, roles); the pages
    api.py        the /api/ routes the pages use and tests call
    auth.py       users file, scrypt hashes, sessions, CSRF tokens, login throttling
    rois.py       RoiEditor: lanes validated like check-config, written atomically with a backup, applied live
    static/       the pages: plain HTML, one CSS file, small JS files (no build step, no CDN)

Off unless ``console.enabled``; its HTTP server (Tornado) is imported only then. See docs/console.md.
"""
