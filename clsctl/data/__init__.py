"""Datasets (files, layouts, torchvision sets, wrappers), decoding, transforms, batch mixing and loaders."""
