{{ config(severity='warn') }}
-- A warning, never a failure: customers whose resolved address names a country the seed
-- iso3166_countries does not know (country_code NULL); add the spelling to the seed to accept it.
select customer_key, country_unrecognised
from {{ ref('int_customer_profiles') }}
where country_unrecognised is not null
