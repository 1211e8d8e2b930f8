package io.edgeseal;

/**
 * The package failed authentication: damaged, modified, or not openable with the key given.
 *
 * <p>Deliberately opaque: the same class and message for a bad tag, a bad signature, a slot that
 * does not unwrap and a malformed structure, so callers (and attackers) learn nothing from which
 * check failed. Subclasses only report facts anyone can read off the cleartext file.
 */
public class InvalidPackageException extends EdgesealException {
    private static final long serialVersionUID = 1L;

    static final String DEFAULT_MESSAGE =
            "sealed package is invalid: it is damaged, was modified, or the key does not open it";

    public InvalidPackageException() {
        super(DEFAULT_MESSAGE);
    }

    protected InvalidPackageException(String message) {
        super(message);
    }

    @Override
    public String pythonName() {
        return "InvalidPackage";
    }
}
