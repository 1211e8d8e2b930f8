package io.edgeseal;

/** The package is signed by a publisher key that is not among the trusted keys. */
public final class UntrustedPublisherException extends InvalidPackageException {
    private static final long serialVersionUID = 1L;

    UntrustedPublisherException(String message) {
        super(message);
    }

    @Override
    public String pythonName() {
        return "UntrustedPublisher";
    }
}
