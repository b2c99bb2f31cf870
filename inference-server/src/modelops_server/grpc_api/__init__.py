"""The Open Inference Protocol over gRPC: the protocol (inference.proto), the code protoc
makes of it, and the service."""
