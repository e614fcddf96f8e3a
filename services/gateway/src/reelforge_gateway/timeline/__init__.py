"""A finished film handed to an editor: its cut, the timeline in OpenTimelineIO and editors' formats, the bundle."""
