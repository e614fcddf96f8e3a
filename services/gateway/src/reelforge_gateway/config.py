from pydantic import Field, SecretStr

from reelforge_shared.settings import CommonSettings


class GatewaySettings(CommonSettings):
    host: str = Field(
        "127.0.0.1", validation_alias="REELFORGE_GATEWAY_HOST", description="gateway listen address (0.0.0.0 in containers)"
    )
    port: int = Field(
        8080, ge=0, le=65535, validation_alias="REELFORGE_GATEWAY_PORT", description="gateway HTTP port (0: any free port)"
    )
    max_body_bytes: int = Field(5_000_000, ge=1024, description="largest storyboard accepted (413 above)")
    assets_database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL for the media_assets table (uploader writes, gateway reads); unset: rows in the work bucket",
    )
