package io.edgeseal;

/**
 * Base of every error this library raises on purpose. Mirrors {@code edgeseal.runtime.errors.EdgesealError}.
 *
 * <pre>
 * EdgesealException
 * ├── InvalidPackageException        the package does not authenticate (opaque)
 * │   ├── UnsignedPackageException       no signature, and unsigned packages were not allowed
 * │   ├── UntrustedPublisherException    signed by a key the caller does not trust
 * │   └── NoMatchingKeyException         no key slot is addressed to the key given
 * ├── PolicyException                authentic, but refused by the caller's policy
 * │   ├── RollbackRejectedException      model version below the caller's floor
 * │   └── PackageExpiredException        past the expiry the publisher sealed in
 * └── UnsupportedException           valid package this platform or build cannot open
 * </pre>
 *
 * Messages never contain key material.
 */
public class EdgesealException extends Exception {
    private static final long serialVersionUID = 1L;

    public EdgesealException(String message) {
        super(message);
    }

    public EdgesealException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The name of the matching Python exception class, e.g. {@code "InvalidPackage"}. */
    public String pythonName() {
        return "EdgesealError";
    }
}
