"""`kerasdl serve MODEL_DIR`: the models of a repository (or one export or run) over HTTP, with a web page."""

from __future__ import annotations

import argparse

from kerasdl.commands import non_negative_float, port_number, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve exported models over HTTP (JSON API + web page at /) with waitress"
    )
    parser.add_argument("model_dir", help="a model repository (NAME/VERSION/ export folders; kerasdl export "
                        "--to-repo writes one), an export folder, an artifact or a run directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other "
                        "needs --api-key-env)")
    parser.add_argument("--port", type=port_number, default=8000, help="port (default 8000)")
    parser.add_argument("--workers", type=positive_int, default=4, help="request threads (default 4)")
    parser.add_argument("--api-key-env", metavar="NAME", help="environment variable holding the API key that "
                        "/v1/ requests must send (X-API-Key header)")
    parser.add_argument("--max-batch-size", type=positive_int, default=32,
                        help="micro-batching: most samples one model call takes (default 32; 1: no batching)")
    parser.add_argument("--batch-wait-ms", type=non_negative_float, default=2.0,
                        help="micro-batching: how long a request waits for others to join (default 2 ms)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kerasdl.quiet import filtered_stderr
    from kerasdl.serve.app import ServerConfig
    from kerasdl.serve.batching import BatchingConfig
    from kerasdl.serve.repository import ModelRepository
    from kerasdl.serve.server import api_key_from, check_binding, create_server

    api_key = api_key_from(args.api_key_env)
    check_binding(args.host, api_key)  # before any model loads
    with filtered_stderr(enabled=not getattr(args, "verbose", False)):  # LiteRT's "Created ... delegate" lines
        repository = ModelRepository.load(args.model_dir)
    for servable in repository.servables():
        state = f"{servable.model.task}, {servable.model.backend}" if servable.model else f"NOT LOADED: {servable.error}"
        print(f"  {servable.name} version {servable.version} ({state})")
    config = ServerConfig(batching=BatchingConfig(args.max_batch_size, args.batch_wait_ms), api_key=api_key)
    server = create_server(repository, args.host, args.port, args.workers, config)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving on http://{host}:{server.effective_port}/ with waitress, {args.workers} threads (API: /v1/models; "
          "Ctrl-C stops)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        print("stopped")
    return 0
