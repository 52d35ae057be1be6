"""Images: OCI and docker-save images in a content-addressed layer store.

    mcd.images.layers     unpack one layer blob (verified) into overlay lowerdir form
    mcd.images.store      images, tags and layers under ROOT/images (see docs/design.md)
    mcd.images.archive    read docker-save archives and OCI layouts (dir or tar)
    mcd.images.reference  image references: registry/repository:tag@digest
    mcd.images.config     an image's config applied to a container spec
"""
