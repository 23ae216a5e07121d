"""How large an image may be to be decoded. Apart from camera.py, which imports cv2, because
OpenCV must be told its own limit before cv2 is first imported (``moodtunes.vision`` does that)."""

# Decoding takes ~6 bytes a pixel (BGR, then RGB): 100 megapixels is ~600 MB, and more than any
# camera photo. OpenCV's own limit (2^30 pixels) lets a 1 MB PNG of 30000x30000 ask for 5.4 GB.
MAX_IMAGE_PIXELS = 100_000_000
# The largest image file read into memory: 100 megapixels stored uncompressed (8-bit RGB, as BMP,
# PPM or TIFF may), 300 MB. A bigger file is refused from its size on disk, before it is read: any
# file named .jpg was read whole (a 30 GB sparse one raised MemoryError), whatever it held.
MAX_IMAGE_BYTES = 3 * MAX_IMAGE_PIXELS
