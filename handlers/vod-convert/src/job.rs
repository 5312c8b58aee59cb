//! The MediaConvert job: the encoding profile (the sample `job.json` as data) and the typed
//! `JobSettings` built from it.
//!
//! The settings are built from `aws_sdk_mediaconvert::types`, not from a JSON string, so the
//! SDK model checks every field name and enum value at compile time.

use std::collections::HashMap;

use aws_sdk_mediaconvert::types::{
    AacAudioDescriptionBroadcasterMix, AacCodecProfile, AacCodingMode, AacRateControlMode,
    AacRawFormat, AacSettings, AacSpecification, AfdSignaling, AntiAlias, AudioCodec,
    AudioCodecSettings, AudioDefaultSelection, AudioDescription, AudioLanguageCodeControl,
    AudioSelector, AudioTypeControl, ColorMetadata, ColorSpace, ContainerSettings, ContainerType,
    DropFrameTimecode, FileGroupSettings, FrameCaptureSettings, H264AdaptiveQuantization,
    H264CodecLevel, H264CodecProfile, H264EntropyEncoding, H264FieldEncoding,
    H264FlickerAdaptiveQuantization, H264FramerateControl, H264FramerateConversionAlgorithm,
    H264GopBReference, H264GopSizeUnits, H264InterlaceMode, H264ParControl, H264QualityTuningLevel,
    H264RateControlMode, H264RepeatPps, H264SceneChangeDetect, H264Settings, H264SlowPal,
    H264SpatialAdaptiveQuantization, H264Syntax, H264Telecine, H264TemporalAdaptiveQuantization,
    H264UnregisteredSeiTimecode, HlsCaptionLanguageSetting, HlsClientCache, HlsCodecSpecification,
    HlsDirectoryStructure, HlsGroupSettings, HlsIFrameOnlyManifest, HlsManifestCompression,
    HlsManifestDurationFormat, HlsOutputSelection, HlsProgramDateTime, HlsSegmentControl,
    HlsSettings, HlsStreamInfResolution, HlsTimedMetadataId3Frame, Input, InputDeblockFilter,
    InputDenoiseFilter, InputFilterEnable, InputPsiControl, InputTimecodeSource, JobSettings,
    M3u8PcrControl, M3u8Scte35Source, M3u8Settings, Mp4CslgAtom, Mp4FreeSpaceBox, Mp4MoovPlacement,
    Mp4Settings, Output, OutputGroup, OutputGroupSettings, OutputGroupType, OutputSettings,
    RespondToAfd, ScalingBehavior, TimedMetadata, VideoCodec, VideoCodecSettings, VideoDescription,
    VideoSelector, VideoTimecodeInsertion,
};

/// The one audio selector of the input; every output's audio refers to it by this name
/// (MediaConvert's default `AudioSourceName`).
pub const AUDIO_SELECTOR: &str = "Audio Selector 1";

/// One H.264 output size and bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendition {
    pub width: i32,
    pub height: i32,
    /// Bits per second, constant bitrate (CBR) as in the sample.
    pub bitrate: i32,
}

impl Rendition {
    /// The HLS name modifier: `_360` for a 360-line rendition (`{name}_360.m3u8`).
    pub fn name_modifier(&self) -> String {
        format!("_{}", self.height)
    }
}

/// The frame-capture (JPEG thumbnail) output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thumbnails {
    pub width: i32,
    pub height: i32,
    /// One frame every this many seconds (`FramerateNumerator` 1 / `FramerateDenominator`).
    pub interval_seconds: i32,
    pub max_captures: i32,
    /// JPEG quality, 1 to 100.
    pub quality: i32,
}

/// What the job produces. [`Profile::default`] is the sample `job.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The HLS ladder, lowest first.
    pub hls: Vec<Rendition>,
    /// HLS segment length in seconds.
    pub segment_length: i32,
    /// The progressive-download MP4.
    pub mp4: Rendition,
    pub thumbnails: Thumbnails,
    /// AAC-LC stereo bitrate in bits per second.
    pub audio_bitrate: i32,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            hls: vec![
                Rendition {
                    width: 640,
                    height: 360,
                    bitrate: 1_000_000,
                },
                Rendition {
                    width: 960,
                    height: 540,
                    bitrate: 2_000_000,
                },
                Rendition {
                    width: 1280,
                    height: 720,
                    bitrate: 3_000_000,
                },
            ],
            segment_length: 10,
            mp4: Rendition {
                width: 1280,
                height: 720,
                bitrate: 3_000_000,
            },
            thumbnails: Thumbnails {
                width: 1280,
                height: 720,
                interval_seconds: 5,
                max_captures: 500,
                quality: 80,
            },
            audio_bitrate: 96_000,
        }
    }
}

/// The three output folders of a video in the destination bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinations {
    pub hls: String,
    pub mp4: String,
    pub thumbnails: String,
}

impl Destinations {
    /// `s3://{bucket}/{name}/hls/`, `.../mp4/`, `.../thumbnails/`.
    pub fn new(bucket: &str, video_name: &str) -> Self {
        let base = format!("s3://{bucket}/{video_name}");
        Destinations {
            hls: format!("{base}/hls/"),
            mp4: format!("{base}/mp4/"),
            thumbnails: format!("{base}/thumbnails/"),
        }
    }
}

/// The key of the HLS master playlist MediaConvert writes for a video: `{name}/hls/{name}.m3u8`
/// (MediaConvert names it after the input's file stem, which is the video name).
pub fn master_playlist_key(video_name: &str) -> String {
    format!("{video_name}/hls/{video_name}.m3u8")
}

/// The complete job settings for one input.
pub fn job_settings(input_url: &str, dest: &Destinations, profile: &Profile) -> JobSettings {
    let hls_outputs = profile
        .hls
        .iter()
        .map(|r| {
            Output::builder()
                .name_modifier(r.name_modifier())
                .container_settings(m3u8_container())
                .video_description(h264_video(r))
                .audio_descriptions(aac_audio(profile.audio_bitrate))
                .output_settings(
                    OutputSettings::builder()
                        .hls_settings(
                            HlsSettings::builder()
                                .audio_group_id("program_audio")
                                .audio_rendition_sets("program_audio")
                                .segment_modifier("$dt$")
                                .i_frame_only_manifest(HlsIFrameOnlyManifest::Exclude)
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .collect::<Vec<_>>();

    let hls_group = OutputGroup::builder()
        .custom_name("HLS")
        .name("Apple HLS")
        .set_outputs(Some(hls_outputs))
        .output_group_settings(
            OutputGroupSettings::builder()
                .r#type(OutputGroupType::HlsGroupSettings)
                .hls_group_settings(
                    HlsGroupSettings::builder()
                        .destination(&dest.hls)
                        .segment_length(profile.segment_length)
                        .min_segment_length(0)
                        .manifest_duration_format(HlsManifestDurationFormat::Integer)
                        .timed_metadata_id3_period(10)
                        .timed_metadata_id3_frame(HlsTimedMetadataId3Frame::Priv)
                        .caption_language_setting(HlsCaptionLanguageSetting::Omit)
                        .codec_specification(HlsCodecSpecification::Rfc4281)
                        .output_selection(HlsOutputSelection::ManifestsAndSegments)
                        .program_date_time(HlsProgramDateTime::Exclude)
                        .program_date_time_period(600)
                        .directory_structure(HlsDirectoryStructure::SingleDirectory)
                        .segment_control(HlsSegmentControl::SegmentedFiles)
                        .manifest_compression(HlsManifestCompression::None)
                        .client_cache(HlsClientCache::Enabled)
                        .stream_inf_resolution(HlsStreamInfResolution::Include)
                        .build(),
                )
                .build(),
        )
        .build();

    let mp4_group = OutputGroup::builder()
        .custom_name("MP4")
        .name("File Group")
        .outputs(
            Output::builder()
                .container_settings(
                    ContainerSettings::builder()
                        .container(ContainerType::Mp4)
                        .mp4_settings(
                            Mp4Settings::builder()
                                .cslg_atom(Mp4CslgAtom::Include)
                                .free_space_box(Mp4FreeSpaceBox::Exclude)
                                .moov_placement(Mp4MoovPlacement::ProgressiveDownload)
                                .build(),
                        )
                        .build(),
                )
                .video_description(h264_video(&profile.mp4))
                .audio_descriptions(aac_audio(profile.audio_bitrate))
                .build(),
        )
        .output_group_settings(file_group(&dest.mp4))
        .build();

    let t = &profile.thumbnails;
    let thumbnails_group = OutputGroup::builder()
        .custom_name("Thumbnails")
        .name("File Group")
        .outputs(
            Output::builder()
                .container_settings(
                    ContainerSettings::builder()
                        .container(ContainerType::Raw)
                        .build(),
                )
                .video_description(
                    video_base(t.width, t.height)
                        .codec_settings(
                            VideoCodecSettings::builder()
                                .codec(VideoCodec::FrameCapture)
                                .frame_capture_settings(
                                    FrameCaptureSettings::builder()
                                        .framerate_numerator(1)
                                        .framerate_denominator(t.interval_seconds)
                                        .max_captures(t.max_captures)
                                        .quality(t.quality)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .output_group_settings(file_group(&dest.thumbnails))
        .build();

    JobSettings::builder()
        .ad_avail_offset(0)
        .inputs(input(input_url))
        .output_groups(hls_group)
        .output_groups(mp4_group)
        .output_groups(thumbnails_group)
        .build()
}

fn input(url: &str) -> Input {
    let mut selectors = HashMap::new();
    selectors.insert(
        AUDIO_SELECTOR.to_string(),
        AudioSelector::builder()
            .offset(0)
            .default_selection(AudioDefaultSelection::Default)
            .program_selection(1)
            .build(),
    );
    Input::builder()
        .file_input(url)
        .set_audio_selectors(Some(selectors))
        .video_selector(
            VideoSelector::builder()
                .color_space(ColorSpace::Follow)
                .build(),
        )
        .filter_enable(InputFilterEnable::Auto)
        .psi_control(InputPsiControl::UsePsi)
        .filter_strength(0)
        .deblock_filter(InputDeblockFilter::Disabled)
        .denoise_filter(InputDenoiseFilter::Disabled)
        .timecode_source(InputTimecodeSource::Embedded)
        .build()
}

/// A file group writing to `destination`. No canned ACL: the sample's `PUBLIC_READ` is left
/// out because the output bucket is private and read through CloudFront (OAC).
fn file_group(destination: &str) -> OutputGroupSettings {
    OutputGroupSettings::builder()
        .r#type(OutputGroupType::FileGroupSettings)
        .file_group_settings(
            FileGroupSettings::builder()
                .destination(destination)
                .build(),
        )
        .build()
}

fn m3u8_container() -> ContainerSettings {
    ContainerSettings::builder()
        .container(ContainerType::M3U8)
        .m3u8_settings(
            M3u8Settings::builder()
                .audio_frames_per_pes(4)
                .pcr_control(M3u8PcrControl::PcrEveryPesPacket)
                .pmt_pid(480)
                .private_metadata_pid(503)
                .program_number(1)
                .pat_interval(0)
                .pmt_interval(0)
                .scte35_source(M3u8Scte35Source::None)
                .timed_metadata(TimedMetadata::None)
                .video_pid(481)
                .set_audio_pids(Some((482..=492).collect()))
                .build(),
        )
        .build()
}

/// The size, scaling and signalling common to every video output of the sample.
fn video_base(
    width: i32,
    height: i32,
) -> aws_sdk_mediaconvert::types::builders::VideoDescriptionBuilder {
    VideoDescription::builder()
        .width(width)
        .height(height)
        .scaling_behavior(ScalingBehavior::Default)
        .timecode_insertion(VideoTimecodeInsertion::Disabled)
        .anti_alias(AntiAlias::Enabled)
        .sharpness(50)
        .afd_signaling(AfdSignaling::None)
        .drop_frame_timecode(DropFrameTimecode::Enabled)
        .respond_to_afd(RespondToAfd::None)
        .color_metadata(ColorMetadata::Insert)
}

/// H.264 as in the sample: Main profile, CBR, GOP 90 frames, 2 B-frames, progressive.
fn h264_video(r: &Rendition) -> VideoDescription {
    video_base(r.width, r.height)
        .codec_settings(
            VideoCodecSettings::builder()
                .codec(VideoCodec::H264)
                .h264_settings(
                    H264Settings::builder()
                        .interlace_mode(H264InterlaceMode::Progressive)
                        .number_reference_frames(3)
                        .syntax(H264Syntax::Default)
                        .softness(0)
                        .gop_closed_cadence(1)
                        .gop_size(90.0)
                        .slices(1)
                        .gop_b_reference(H264GopBReference::Disabled)
                        .slow_pal(H264SlowPal::Disabled)
                        .spatial_adaptive_quantization(H264SpatialAdaptiveQuantization::Enabled)
                        .temporal_adaptive_quantization(H264TemporalAdaptiveQuantization::Enabled)
                        .flicker_adaptive_quantization(H264FlickerAdaptiveQuantization::Disabled)
                        .entropy_encoding(H264EntropyEncoding::Cabac)
                        .bitrate(r.bitrate)
                        .framerate_control(H264FramerateControl::InitializeFromSource)
                        .rate_control_mode(H264RateControlMode::Cbr)
                        .codec_profile(H264CodecProfile::Main)
                        .telecine(H264Telecine::None)
                        .min_i_interval(0)
                        .adaptive_quantization(H264AdaptiveQuantization::High)
                        .codec_level(H264CodecLevel::Auto)
                        .field_encoding(H264FieldEncoding::Paff)
                        .scene_change_detect(H264SceneChangeDetect::Enabled)
                        .quality_tuning_level(H264QualityTuningLevel::SinglePass)
                        .framerate_conversion_algorithm(
                            H264FramerateConversionAlgorithm::DuplicateDrop,
                        )
                        .unregistered_sei_timecode(H264UnregisteredSeiTimecode::Disabled)
                        .gop_size_units(H264GopSizeUnits::Frames)
                        .par_control(H264ParControl::InitializeFromSource)
                        .number_b_frames_between_reference_frames(2)
                        .repeat_pps(H264RepeatPps::Disabled)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// AAC-LC, CBR, stereo, 48 kHz, MPEG-4, from the input's first audio selector.
fn aac_audio(bitrate: i32) -> AudioDescription {
    AudioDescription::builder()
        .audio_source_name(AUDIO_SELECTOR)
        .audio_type_control(AudioTypeControl::FollowInput)
        .language_code_control(AudioLanguageCodeControl::FollowInput)
        .codec_settings(
            AudioCodecSettings::builder()
                .codec(AudioCodec::Aac)
                .aac_settings(
                    AacSettings::builder()
                        .audio_description_broadcaster_mix(
                            AacAudioDescriptionBroadcasterMix::Normal,
                        )
                        .bitrate(bitrate)
                        .rate_control_mode(AacRateControlMode::Cbr)
                        .codec_profile(AacCodecProfile::Lc)
                        .coding_mode(AacCodingMode::CodingMode20)
                        .raw_format(AacRawFormat::None)
                        .sample_rate(48_000)
                        .specification(AacSpecification::Mpeg4)
                        .build(),
                )
                .build(),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = "s3://src/videos/my video 한.mp4";

    fn settings() -> JobSettings {
        job_settings(
            INPUT,
            &Destinations::new("out-bucket", "my video 한"),
            &Profile::default(),
        )
    }

    fn h264(o: &Output) -> (i32, i32, &H264Settings) {
        let v = o.video_description().unwrap();
        let h = v.codec_settings().unwrap().h264_settings().unwrap();
        (v.width().unwrap(), v.height().unwrap(), h)
    }

    fn aac(o: &Output) -> &AacSettings {
        o.audio_descriptions()[0]
            .codec_settings()
            .unwrap()
            .aac_settings()
            .unwrap()
    }

    #[test]
    fn destinations_and_master_playlist() {
        let d = Destinations::new("out", "my video 한");
        assert_eq!(d.hls, "s3://out/my video 한/hls/");
        assert_eq!(d.mp4, "s3://out/my video 한/mp4/");
        assert_eq!(d.thumbnails, "s3://out/my video 한/thumbnails/");
        assert_eq!(master_playlist_key("clip"), "clip/hls/clip.m3u8");
    }

    #[test]
    fn input_is_the_video() {
        let s = settings();
        assert_eq!(s.inputs().len(), 1);
        let i = &s.inputs()[0];
        assert_eq!(i.file_input(), Some(INPUT));
        assert!(i.audio_selectors().unwrap().contains_key(AUDIO_SELECTOR));
    }

    #[test]
    fn three_groups_hls_mp4_thumbnails() {
        let s = settings();
        let names: Vec<_> = s
            .output_groups()
            .iter()
            .map(|g| g.custom_name().unwrap())
            .collect();
        assert_eq!(names, ["HLS", "MP4", "Thumbnails"]);
    }

    #[test]
    fn hls_ladder_of_the_sample() {
        let s = settings();
        let g = &s.output_groups()[0];
        let gs = g.output_group_settings().unwrap();
        assert_eq!(gs.r#type(), Some(&OutputGroupType::HlsGroupSettings));
        let hls = gs.hls_group_settings().unwrap();
        assert_eq!(hls.segment_length(), Some(10));
        assert_eq!(hls.destination(), Some("s3://out-bucket/my video 한/hls/"));
        assert_eq!(
            hls.directory_structure(),
            Some(&HlsDirectoryStructure::SingleDirectory)
        );
        let ladder: Vec<_> = g
            .outputs()
            .iter()
            .map(|o| {
                assert_eq!(
                    o.container_settings().unwrap().container(),
                    Some(&ContainerType::M3U8)
                );
                let (w, h, x) = h264(o);
                assert_eq!(x.rate_control_mode(), Some(&H264RateControlMode::Cbr));
                assert_eq!(x.codec_profile(), Some(&H264CodecProfile::Main));
                assert_eq!(x.gop_size(), Some(90.0));
                assert_eq!(x.number_b_frames_between_reference_frames(), Some(2));
                assert_eq!(aac(o).bitrate(), Some(96_000));
                (o.name_modifier().unwrap(), w, h, x.bitrate().unwrap())
            })
            .collect();
        assert_eq!(
            ladder,
            [
                ("_360", 640, 360, 1_000_000),
                ("_540", 960, 540, 2_000_000),
                ("_720", 1280, 720, 3_000_000),
            ]
        );
    }

    #[test]
    fn mp4_720p_progressive_download() {
        let s = settings();
        let g = &s.output_groups()[1];
        let gs = g.output_group_settings().unwrap();
        assert_eq!(gs.r#type(), Some(&OutputGroupType::FileGroupSettings));
        assert_eq!(
            gs.file_group_settings().unwrap().destination(),
            Some("s3://out-bucket/my video 한/mp4/")
        );
        assert_eq!(g.outputs().len(), 1);
        let o = &g.outputs()[0];
        let c = o.container_settings().unwrap();
        assert_eq!(c.container(), Some(&ContainerType::Mp4));
        assert_eq!(
            c.mp4_settings().unwrap().moov_placement(),
            Some(&Mp4MoovPlacement::ProgressiveDownload)
        );
        let (w, h, x) = h264(o);
        assert_eq!((w, h, x.bitrate()), (1280, 720, Some(3_000_000)));
        assert_eq!(o.name_modifier(), None, "the MP4 is {{name}}.mp4");
    }

    #[test]
    fn aac_stereo_48k() {
        let s = settings();
        let o = &s.output_groups()[1].outputs()[0];
        let a = &o.audio_descriptions()[0];
        assert_eq!(a.audio_source_name(), Some(AUDIO_SELECTOR));
        assert_eq!(a.codec_settings().unwrap().codec(), Some(&AudioCodec::Aac));
        let aac = aac(o);
        assert_eq!(aac.codec_profile(), Some(&AacCodecProfile::Lc));
        assert_eq!(aac.coding_mode(), Some(&AacCodingMode::CodingMode20));
        assert_eq!(aac.sample_rate(), Some(48_000));
        assert_eq!(aac.rate_control_mode(), Some(&AacRateControlMode::Cbr));
    }

    #[test]
    fn thumbnails_every_5_s() {
        let s = settings();
        let g = &s.output_groups()[2];
        assert_eq!(
            g.output_group_settings()
                .unwrap()
                .file_group_settings()
                .unwrap()
                .destination(),
            Some("s3://out-bucket/my video 한/thumbnails/")
        );
        let o = &g.outputs()[0];
        assert_eq!(
            o.container_settings().unwrap().container(),
            Some(&ContainerType::Raw)
        );
        assert!(o.audio_descriptions().is_empty(), "no audio in thumbnails");
        let v = o.video_description().unwrap();
        assert_eq!((v.width(), v.height()), (Some(1280), Some(720)));
        let c = v.codec_settings().unwrap();
        assert_eq!(c.codec(), Some(&VideoCodec::FrameCapture));
        let f = c.frame_capture_settings().unwrap();
        assert_eq!(f.framerate_numerator(), Some(1));
        assert_eq!(f.framerate_denominator(), Some(5));
        assert_eq!(f.max_captures(), Some(500));
        assert_eq!(f.quality(), Some(80));
    }
}
