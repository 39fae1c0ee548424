"""The device's models: signed bundles in, a durable registry of which model decides, shadow runs, switches.

    bundle.py    the .cwm format: tar + a 112-byte trailer (digest, key id, Ed25519 signature); verify_bundle
    keys.py      Ed25519 key pairs (pyca/cryptography), key ids, the device's trusted keys
    registry.py  registry.json: active, candidate, history, change log (a pure value) and its atomic file
    store.py     <state>/models/<sha256>/: stored bundles, checked again before every use
    actions.py   install, promote, rollback: verify, change under the lock, log (CLI and daemon share them)
    loader.py    which model a start runs (registry, history, model.path); loading one at run time
    shadow.py    the candidate beside the active model on live frames; agreement and differences (pure stats)
    manager.py   the daemon's thread that follows the registry: switches, shadow runs, events, telemetry
    commands.py  model_status / model_list / model_promote / model_rollback / model_install over MQTT
    service.py   start-up wiring (build_daemon)
    cli.py       edge-daemon model install|status|list|promote|rollback
    files.py     durable small writes; faults.py  named kill points for the crash tests; errors.py

docs/models.md tells the whole story.
"""
