package io.edgeseal;

/** No key slot of the package is addressed to the key that was given. */
public final class NoMatchingKeyException extends InvalidPackageException {
    private static final long serialVersionUID = 1L;

    NoMatchingKeyException(String message) {
        super(message);
    }

    @Override
    public String pythonName() {
        return "NoMatchingKey";
    }
}
