package io.edgeseal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The decrypted model, in a direct {@link ByteBuffer} outside the Java heap, ready for LiteRT's
 * {@code new Interpreter(buffer)} or ONNX Runtime's {@code env.createSession(buffer, options)}.
 * It never touches a file. {@link #close()} overwrites it with zeros: close it only after the
 * interpreter that reads it is closed (LiteRT keeps reading the buffer; ONNX Runtime copies it).
 */
public final class Plaintext implements AutoCloseable {
    private final ByteBuffer buffer;
    private final Manifest manifest;
    private final String publisher;
    private boolean closed;

    Plaintext(ByteBuffer buffer, Manifest manifest, String publisher) {
        this.buffer = buffer;
        this.manifest = manifest;
        this.publisher = publisher;
    }

    /**
     * The model bytes: a direct buffer, position 0, limit = size, native byte order (as LiteRT expects).
     * Each call returns a new view of the same memory.
     */
    public synchronized ByteBuffer buffer() {
        if (closed) {
            throw new IllegalStateException("the plaintext was closed and wiped; open the package again");
        }
        return buffer.duplicate().order(ByteOrder.nativeOrder());
    }

    public int size() {
        return buffer.capacity();
    }

    /** The manifest, authenticated (signature and/or AEAD tags checked). */
    public Manifest manifest() {
        return manifest;
    }

    /** Fingerprint of the verified publisher key ({@code xxxx:xxxx:...}), or null when unsigned was allowed. */
    public String publisher() {
        return publisher;
    }

    /** Overwrite the plaintext with zeros (best effort: a backend may hold its own copy). Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        wipe(buffer);
    }

    static void wipe(ByteBuffer b) {
        ByteBuffer w = b.duplicate();
        ((java.nio.Buffer) w).clear(); // via Buffer: ByteBuffer.clear() is not covariant before Java 9 / on older Android
        byte[] zeros = new byte[Math.min(65536, Math.max(1, w.capacity()))];
        while (w.hasRemaining()) {
            w.put(zeros, 0, Math.min(zeros.length, w.remaining()));
        }
    }
}
