# Quickstart: `make demo` runs the kiosk on embedded defaults; `make test` runs the tests.
.PHONY: demo test lint demo-data demo-model models models-check bench

PY := .venv/bin/python
DEMO_DATA ?= build/sim1500
DEMO_RUN ?= build/demo-run
# clean masks of the same walks as DEMO_DATA (optional): the card's second row
DEMO_CLEAN_DATA ?=
# warm-up + cosine LR (peak 0.02), early stopping, temperature and referral threshold on a
# validation part of the training subjects; --max-minutes keeps it within an hour on 2 cores
TRAIN_CMD = $(PY) -m gaitmil.train --data $(DEMO_DATA) --split 112 --preset tiny --out $(DEMO_RUN) \
	--iterations 900 --max-minutes 48 --batch-p 16 --batch-k 2 --frames 16 --lr 0.02 --warmup 0.05 \
	--val-fraction 0.15 --eval-every 50 --patience 6 --threads 2 --balance-classes --seed 0

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

lint:
	bash scripts/venv.sh dev && .venv/bin/ruff check .

# 1,500 simulated walks in the Scoliosis1K layout (positive:neutral:negative 1:1:2)
demo-data:
	bash scripts/venv.sh dev
	$(PY) -m gaitsim.dataset --walks 1500 --seed 0 --out $(DEMO_DATA) --ratio 1:1:2 --view mixed --workers 2

# Train, evaluate on held-out simulated subjects, write models/demo/{checkpoint.pt,card.json,README.md}
demo-model: demo-data
	$(TRAIN_CMD)
	$(PY) -m gaitmil.evaluate --checkpoint $(DEMO_RUN)/checkpoint.pt --data $(DEMO_DATA) \
		$(if $(DEMO_CLEAN_DATA),--clean-data $(DEMO_CLEAN_DATA),) --json $(DEMO_RUN)/evaluation.json
	cp $(DEMO_RUN)/checkpoint.pt $(DEMO_RUN)/evaluation.json $(DEMO_RUN)/reliability.png \
		$(DEMO_RUN)/metrics.jsonl $(DEMO_RUN)/curves.png models/demo/
	$(PY) -m gaitmil.card --checkpoint models/demo/checkpoint.pt --evaluation models/demo/evaluation.json \
		--out models/demo --command "make demo-model  # $(TRAIN_CMD)"

# ONNX FP32/FP16/INT8 forms, manifests, calibration description and precision report from the checkpoint
models:
	bash scripts/venv.sh dev
	$(PY) -m export.make_demo_artifacts --checkpoint models/demo/checkpoint.pt --out models/demo

models-check:
	$(PY) -m export.make_demo_artifacts --check

# All benchmarks -> benchmarks/RESULTS.md (run on a quiet machine)
bench:
	bash scripts/venv.sh dev
	$(PY) -m benchmarks.results

bench-quick:
	$(PY) -m benchmarks.results --iters 20 --warmup 3 --kiosks 20 --seconds 5 --walks 60 --sim-walks 2 \
		--out-dir /tmp/gaitmil-bench --results /tmp/gaitmil-bench/RESULTS.md
