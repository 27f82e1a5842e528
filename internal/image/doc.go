// Package image owns container images for Gantry's serverless node: it pulls them from any
// OCI or Docker registry, verifies their digests, unpacks each layer once into a
// content-addressed cache that every pod shares (as overlayfs lower directories), and
// garbage-collects what no pod uses. It also runs the embedded registry that `gantry server`
// serves on loopback, and builds single-layer images from Go main packages, which is how
// Gantry's test images (test/images) reach that registry.
package image
