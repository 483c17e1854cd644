# Quickstart: `make demo` runs the kiosk on embedded defaults; `make test` runs the tests.
.PHONY: demo test lint demo-data demo-model models models-check bench

PY := .venv/bin/python
# PyTorch backs its CPU buffers of 2 MiB and more with huge pages: at 128x88 a training step
# allocates hundreds of MB of activations, and with 4 KiB pages (transparent huge pages at
# `madvise`, Debian's default) the kernel's page faults took about a third of a step (8 iterations
# 179 s without, 114 s with, 2-core AMD EPYC; docs/MODEL.md, "Speed on a CPU"). No effect on results.
export THP_MEM_ALLOC_ENABLE = 1
# Training and test data come from the kiosk's own camera path (edge collect): simulated
# depth frames through the kiosk's segmenter and walk gate, with the clean truth masks of
# the same frames beside. Eight streams of 200 walks, two per simulated child (seven camera
# mounts and the default one), for training and validation; two fresh streams of 200 walks
# (100 children each walking twice) for the card and its per-child figures.
# Silhouette height the kiosk-path data and the model use: 128 (128x88, trunk cues twice as
# many pixels; the shipped demo since 2026-12-07, with the lateral-profile fusion) or 64 (64x44,
# the Scoliosis1K / paper protocol; 2.4x faster per walk, about 6x faster to train).
# Collect, train and evaluate must agree, so each height keeps its own build folders
# (build/kiosk-train-128, ... and build/kiosk-train, ...): `make demo-model INPUT_HEIGHT=64`.
INPUT_HEIGHT ?= 128
HEIGHT_TAG_64 =
HEIGHT_TAG_128 = -128
DEMO_DATA ?= build/kiosk-train$(HEIGHT_TAG_$(INPUT_HEIGHT))
DEMO_CLEAN_DATA ?= build/kiosk-train$(HEIGHT_TAG_$(INPUT_HEIGHT))-clean
TEST_DATA ?= build/kiosk-test$(HEIGHT_TAG_$(INPUT_HEIGHT))
TEST_CLEAN_DATA ?= build/kiosk-test$(HEIGHT_TAG_$(INPUT_HEIGHT))-clean
DEMO_RUN ?= build/demo-run$(HEIGHT_TAG_$(INPUT_HEIGHT))
DEMO_REFIT ?= build/demo-refit$(HEIGHT_TAG_$(INPUT_HEIGHT))
DEMO_FUSED ?= build/demo-fused$(HEIGHT_TAG_$(INPUT_HEIGHT))
# Iterations and wall-clock stop of each height's measured run on 2 cores: 600 in 29 min at
# 64 px; 320 in 86 min at 128 px (77 min with huge pages on an AMD EPYC). The LR schedule runs
# on iterations; --max-minutes only stops a run that would overrun, e.g. on a busy machine.
ITERATIONS_64 = 600
MAX_MINUTES_64 = 65
ITERATIONS_128 = 320
MAX_MINUTES_128 = 100
ifeq ($(ITERATIONS_$(INPUT_HEIGHT)),)
$(error INPUT_HEIGHT=$(INPUT_HEIGHT) has no measured recipe: use 64 or 128)
endif
TRAIN_SOURCES = $(foreach s,100 101 102 103 104 105 106,--source 'sim://?seed=$(s)&walks=200&repeats=2&view=mixed&camera_seed=$(s)') \
	--source 'sim://?seed=107&walks=200&repeats=2&view=mixed'
TEST_SOURCES = --source 'sim://?seed=900&walks=200&repeats=2&view=mixed' \
	--source 'sim://?seed=901&walks=200&repeats=2&view=mixed&camera_seed=901'
# issue 25's recipe (docs/MODEL.md, "Recipe options" and "The recipe at size"): AdamW with the
# head at 0.1 x the LR, weight EMA, gradient clipping, an LR schedule on iterations only
# (--max-minutes only stops a run), a fitting curve on training walks, and model selection,
# temperature and threshold each on their own third of the validation subjects (32 % of the
# children: 512 walks, about 170 per part). Measured on 2026-12-07 (the shipped demo): 600
# iterations in 29 min on 2 cores; validation 79.7 % (172 walks) at 500, training walks 88 %.
TRAIN_CMD = $(PY) -m gaitmil.train --data $(DEMO_DATA) --split $(DEMO_DATA)/Scoliosis1K_kiosk.json --preset tiny \
	--input-height $(INPUT_HEIGHT) --out $(DEMO_RUN) --iterations $(ITERATIONS_$(INPUT_HEIGHT)) --max-minutes $(MAX_MINUTES_$(INPUT_HEIGHT)) --batch-p 16 --batch-k 2 --frames 16 \
	--optimizer adamw --lr 0.001 --weight-decay 0.05 --head-lr-mult 0.1 --ema 0.98 --clip-grad 5 \
	--schedule-clock iterations --train-eval-walks 100 --calibration split \
	--warmup 0.05 --val-fraction 0.32 --eval-every 50 --patience 6 --threads 2 --balance-classes --seed 0 --no-eval
# second stage: MIL pooling and head refitted on the frozen backbone's features (same validation subjects)
REFIT_CMD = $(PY) -m gaitmil.refit_head --checkpoint $(DEMO_RUN)/checkpoint.pt --data $(DEMO_DATA) \
	--split $(DEMO_DATA)/Scoliosis1K_kiosk.json --out $(DEMO_REFIT) --epochs 80 --threads 2
# third stage: an ordinal logistic regression on the walk's lateral profile fused with the network
# (weights, temperature and threshold each on their own validation part; docs/MODEL.md)
FUSE_CMD = $(PY) -m gaitmil.profile_fusion --checkpoint $(DEMO_REFIT)/checkpoint.pt --data $(DEMO_DATA) \
	--split $(DEMO_DATA)/Scoliosis1K_kiosk.json --out $(DEMO_FUSED) --form ordinal --threads 2

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

lint:
	bash scripts/venv.sh dev && .venv/bin/ruff check .

# Kiosk-path data: training/validation streams, and fresh test streams for the card
demo-data:
	bash scripts/venv.sh dev
	$(PY) -m edge.collect $(TRAIN_SOURCES) --workers 2 --test-fraction 0 --input-height $(INPUT_HEIGHT) --out $(DEMO_DATA) --clean $(DEMO_CLEAN_DATA)
	$(PY) -m edge.collect $(TEST_SOURCES) --workers 2 --test-fraction 1 --input-height $(INPUT_HEIGHT) --out $(TEST_DATA) --clean $(TEST_CLEAN_DATA)

# Train, evaluate on the fresh kiosk-path test walks (clean masks as a second row), write the card
demo-model: demo-data
	$(TRAIN_CMD)
	$(REFIT_CMD)
	$(FUSE_CMD)
	$(PY) -m gaitmil.evaluate --checkpoint $(DEMO_FUSED)/checkpoint.pt --data $(TEST_DATA) \
		--split $(TEST_DATA)/Scoliosis1K_kiosk.json --clean-data $(TEST_CLEAN_DATA) \
		--reliability $(DEMO_FUSED)/reliability.png --json $(DEMO_FUSED)/evaluation.json
	cp $(DEMO_FUSED)/checkpoint.pt $(DEMO_FUSED)/evaluation.json $(DEMO_FUSED)/reliability.png \
		$(DEMO_REFIT)/refit.jsonl $(DEMO_RUN)/metrics.jsonl $(DEMO_RUN)/curves.png models/demo/
	$(PY) -m gaitmil.card --checkpoint models/demo/checkpoint.pt --evaluation models/demo/evaluation.json \
		--out models/demo --command "make demo-model  # $(TRAIN_CMD) && $(REFIT_CMD) && $(FUSE_CMD)"

# ONNX FP32/FP16/INT8 forms, manifests, calibration description and precision report from the checkpoint
models:
	bash scripts/venv.sh dev
	$(PY) -m calibration.demo_artifacts --checkpoint models/demo/checkpoint.pt --out models/demo
	# the streaming kiosk's encoder + head (FP32, FP16 and both INT8 encoders) beside model.onnx
	$(PY) -m export split --checkpoint models/demo/checkpoint.pt --out models/demo --fp16
	$(PY) -m calibration split-encoders --out models/demo --sim seed=101,view=mixed,ratio=1:1:1,oversample=2 --count 300

models-check:
	$(PY) -m calibration.demo_artifacts --check

# All benchmarks -> benchmarks/RESULTS.md (run on a quiet machine): kiosk path, latency (with the
# split's encoder/head costs), pipeline, streaming (both kiosk modes side by side), fan-in, accuracy
bench:
	bash scripts/venv.sh dev
	$(PY) -m benchmarks.results

bench-quick:
	$(PY) -m benchmarks.results --iters 20 --warmup 3 --kiosks 20 --seconds 5 --walks 60 --kiosk-walks 20 --sim-walks 2 \
		--out-dir /tmp/gaitmil-bench --results /tmp/gaitmil-bench/RESULTS.md
