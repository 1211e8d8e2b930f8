package io.edgeseal;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * Open edgeseal sealed packages (format v1) from a JVM or Android app: the second reader of the format,
 * written from docs/format.md with JDK classes only.
 *
 * <pre>{@code
 * OpenOptions options = OpenOptions.builder().trust(publisherPublicKey).minVersion(3).build();
 * try (DecryptionKey key = DecryptionKey.x25519(devicePrivateKey);
 *      Plaintext model = Edgeseal.open(packageBytes, key, options)) {
 *     Interpreter interpreter = new Interpreter(model.buffer());   // LiteRT
 *     ...                                                          // close the interpreter before the plaintext
 * }
 * }</pre>
 *
 * Order of checks (§7): structure, then the publisher signature against the trusted keys (before any
 * decryption), then the version floor and expiry, then the key slot, then every chunk's tag, then the codec.
 */
public final class Edgeseal {
    /** Format version this reader implements. */
    public static final int FORMAT_VERSION = 1;

    private Edgeseal() {}

    /** Verify, decrypt in memory and return the plaintext model in a direct buffer. */
    public static Plaintext open(byte[] sealedPackage, DecryptionKey key, OpenOptions options) throws EdgesealException {
        if (sealedPackage == null || key == null || options == null) {
            throw new IllegalArgumentException("open(package, key, options): none of them may be null");
        }
        SealedPackage pkg = SealedPackage.parse(sealedPackage);
        String publisher = pkg.authenticate(options.trusted, options.allowUnsigned);
        pkg.checkPolicy(options.minVersion, options.now());
        refuseUndecodedContent(pkg.manifest());
        pkg.checkSize(options.maxPlaintextBytes);
        byte[] contentKey = pkg.contentKey(key, options.scryptBudget);
        return pkg.decrypt(contentKey, publisher, options.maxPlaintextBytes);
    }

    /** Content format of codebook-encoded ONNX weights (docs/format.md §11), which this reader does not decode. */
    public static final String CODEBOOK_FORMAT = "onnx+codebook";

    /**
     * The payload of an {@code onnx+codebook} package is a container (an ONNX graph plus codebook records), not a
     * model ONNX Runtime's Java API can load from one buffer; this reader does not decode it, so it refuses such a
     * package after authenticating it and before decrypting anything. (The explicit layer,
     * {@link SealedPackage#decrypt}, still returns the container to apps that implement docs/format.md §11.)
     */
    private static void refuseUndecodedContent(Manifest manifest) throws UnsupportedException {
        if (CODEBOOK_FORMAT.equals(manifest.contentFormat)) {
            throw new UnsupportedException("content format " + CODEBOOK_FORMAT + " (codebook-encoded weights, "
                    + "docs/format.md section 11) is not decoded by the JVM reader; seal the model as plain onnx "
                    + "for JVM and Android devices (edgeseal seal without the codebook encoding)");
        }
    }

    /** {@link #open(byte[], DecryptionKey, OpenOptions)} reading the package from a stream (e.g. an Android asset). */
    public static Plaintext open(InputStream sealedPackage, DecryptionKey key, OpenOptions options)
            throws EdgesealException, IOException {
        return open(readAll(sealedPackage), key, options);
    }

    /** Read the cleartext parts only (manifest, slots, claimed publisher); needs no key and checks no signature. */
    public static SealedPackage inspect(byte[] sealedPackage) throws InvalidPackageException {
        return SealedPackage.parse(sealedPackage);
    }

    static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[1 << 16];
        for (int n; (n = in.read(buf)) > 0; ) {
            out.write(buf, 0, n);
        }
        return out.toByteArray();
    }
}
