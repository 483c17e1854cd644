# Quickstart: `make demo` runs the kiosk on embedded defaults; `make test` runs the tests.
.PHONY: demo test lint models demo-model demo-data

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

lint:
	bash scripts/venv.sh dev && .venv/bin/ruff check .
