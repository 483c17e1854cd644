"""Segmentation: a camera Frame in, a person Mask out (plus the facts the walk gate needs).

`choice` picks the segmenter from what the source delivers; `depth` holds the depth,
background-subtraction and passthrough segmenters; `colour` the learned colour path with
its `person_model`; `site` the empty corridor's background depth learned once per kiosk.
"""
